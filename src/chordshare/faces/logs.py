"""Logging for the command line: every line names its node; `--log-format json` writes one
JSON object per line for log collectors."""

from __future__ import annotations

import json
import logging
import sys
import time

from chordshare.node.logctx import NODE_ID

TEXT_FORMAT = "%(asctime)s %(levelname)s node=%(node)s %(name)s: %(message)s"


class NodeIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.node = NODE_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "node": getattr(record, "node", "-"),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(NodeIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
