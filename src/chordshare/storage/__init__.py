"""Each node's data directory: content-addressed chunks on disk, metadata in SQLite (WAL).

Every write is atomic (temporary file, fsync, rename, fsync of the directory), so a crash
never leaves a half-written chunk visible, and a restarted node finds its data as it was.
The methods are blocking: the node runtime calls them through a thread.
"""
