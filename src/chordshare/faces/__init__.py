"""What people use: the command line, the demo (and later the console, REST API, dashboard)."""
