"""Generated protobuf and gRPC code for chordshare.v1 (`make proto`); never edited."""
