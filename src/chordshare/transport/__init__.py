"""Transports: how a node calls a peer. One interface, a gRPC and an in-memory implementation.

Every call has a deadline; a failed call raises `PeerError` (the driver turns it into an
`Unreachable` reply for the protocol core) and marks the peer suspected for the whole node.
"""
