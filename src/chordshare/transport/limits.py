"""How much one peer may ask of a node: message sizes and the gRPC server's own limits."""

from __future__ import annotations

# Room for file chunks (up to 8 MiB) and their framing.
MAX_SERVER_MESSAGE_BYTES = 16 * 1024 * 1024

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_SERVER_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_SERVER_MESSAGE_BYTES),
]
