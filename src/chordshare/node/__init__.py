"""The node runtime: drives the protocol core over a transport, serves gRPC, runs maintenance."""
