"""The simulator: the Chord core driven on an in-memory network, seeded and deterministic.

`network` delivers calls between in-memory nodes, `simulator` drives procedures either to
their end or one message at a time, `faults` says which node may go without breaking the
fault model, `churn` generates seeded schedules of joins, leaves and crashes, and
`experiment` measures lookups the way the Chord paper does; `gossip` carries membership
hints on the calls, and `hints` measures what they cost and how well they name owners.
"""
