"""The decisions of file sharing, without I/O: plain values in, decisions out.

Which version of a name wins, what a put stores, what a repair round offers, pushes and
drops, which chunk to ask of which holder. No asyncio, gRPC or SQLite here: the node's
runtime executes these decisions over the transport and the store, and the simulator
executes them on thousands of in-memory nodes.
"""
