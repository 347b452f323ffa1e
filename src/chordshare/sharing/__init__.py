"""File sharing on the ring: manifests, placement, transfers, replication, search."""
