"""The file-sharing core, without I/O: plain values in, decisions out.

What a manifest is and names, which version of a name wins, what a repair round offers,
pushes and drops, which chunk to ask of which holder, where a name's and a word's records
live, which names are allowed. No asyncio, gRPC or SQLite here, as in `chordshare.chord`:
the node's runtime (`chordshare.sharing`) executes these decisions over the transport and
the store, and the simulator executes them on thousands of in-memory nodes.
"""
