"""chordshare: peer-to-peer file sharing on a self-healing Chord ring over gRPC."""

__version__ = "0.1.0"
