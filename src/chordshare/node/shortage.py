"""Running out of open files is a condition a node meets under load, not a bug of its loops.

A loop whose round met EMFILE (or ENFILE, or the kernel's ENOMEM and ENOBUFS for a new
descriptor) used to log a traceback each round, and the scrubber's took a page a pass. Now
the loop says so once when the shortage begins, nothing while it lasts, once when a round
goes through again, and goes on with its next round. Other errors are the loop's to log, as
before.

Which loops wait is kept per node (the log context's node id) and per loop, for the whole
process: several nodes of a demo or a test share one process and its descriptors, and each
says what it waits for.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chordshare.node.logctx import NODE_ID

T = TypeVar("T")
log = logging.getLogger(__name__)

# What a system call says when the process or the system has no descriptor, or no kernel
# memory for one, to give now; a later round may well get one.
SHORT_OF = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


def short_of(err: BaseException) -> int | None:
    """The errno of a shortage that `err` is, or was raised from (`raise ... from`), or
    that every error of a group is; None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in SHORT_OF:
            return current.errno
        if isinstance(current, BaseExceptionGroup):
            found = [short_of(inner) for inner in current.exceptions]
            return found[0] if None not in found else None
        current = current.__cause__
    return None


class Shortages:
    """Which loops wait for descriptors now, and the two log lines of each wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._since: dict[tuple[str, str], float] = {}  # (node, loop) -> when it began

    def waits(self, err: BaseException, what: str) -> bool:
        """From a loop's except clause: True when `err` is a shortage (said once when it
        begins), False for any other error, which the loop reports as it did."""
        code = short_of(err)
        if code is None:
            return False
        key = (NODE_ID.get(), what)
        if key not in self._since:
            self._since[key] = self.clock()
            log.warning("out of open files: %s waits (%s)", what, os.strerror(code))
        return True

    def goes_on(self, what: str) -> None:
        """After a round of `what` that went through: says so if it had been waiting."""
        since = self._since.pop((NODE_ID.get(), what), None)
        if since is not None:
            log.info("open files again: %s goes on after %.0f s", what, self.clock() - since)

    async def round(self, what: str, work: Awaitable[T]) -> T | None:
        """Await one round of a loop: None for a round a shortage stopped (said as above);
        any other error is raised for the loop to report."""
        try:
            done = await work
        except Exception as err:
            if not self.waits(err, what):
                raise
            return None
        self.goes_on(what)
        return done


# The process's: its descriptors are one pool, whichever node or loop meets its end.
SHORTAGES = Shortages()
waits = SHORTAGES.waits
goes_on = SHORTAGES.goes_on
