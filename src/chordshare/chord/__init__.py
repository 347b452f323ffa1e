"""The Chord protocol core, sans-IO: routing state, decisions and procedures.

Nothing here touches a socket or a clock. Procedures are generators that yield the calls
they need made (see `messages`) and receive the replies; the node runtime drives them over
gRPC, the simulator over an in-memory network. Both run exactly this code.
"""
