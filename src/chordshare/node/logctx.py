"""Which node a log line is about: a context variable the node server sets before it starts
its tasks, so every task of that node (and only of that node, when several share one
process) logs its id."""

from __future__ import annotations

import contextvars

NODE_ID: contextvars.ContextVar[str] = contextvars.ContextVar("chordshare_node", default="-")
