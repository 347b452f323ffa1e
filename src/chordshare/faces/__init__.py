"""What people use: the command line, the console, the REST API with its dashboard, the demo.

No face imports another: what two of them share lives in modules of its own (`render`,
`shapes`, `transfers`, `clients`, `messages`, `loops`), so the API never loads the CLI and
a CLI command loads only what it runs.
"""
