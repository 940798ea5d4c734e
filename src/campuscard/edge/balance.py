"""Kept-alive connections kept even across the worker processes of one ``campuscard serve``
(decision 0413).

uvicorn's workers accept from one shared listening socket: whichever worker is first to call
``accept`` takes the connection, and a kept-alive connection then stays with that worker for
as long as the client keeps it. Tills and a reverse proxy open their connections together and
keep them for hours, so one worker may end up with three times the other's: its booking lane,
its event loop and its clients' answers wait while the other worker has little to do.

Each worker writes how many connections it holds into a file of its own, in a directory the
server names (``CAMPUSCARD_BALANCE_DIR``, emptied at each start), and reads the others'. A
worker holding more than its even share (the total over the workers, rounded up, plus
``slack``, none by default) answers that many of its next requests with ``Connection: close``:
the client reads the whole answer, opens a new connection and sends its next request there,
as HTTP/1.1 says it must. A new connection goes to whichever worker accepts first, most often
one with time to spare; if it comes back, the next count sheds again. Nothing is ever cut:
only a finished answer closes its connection.

A worker writes its count when it starts (so a worker no client has found yet counts, with
none) and then, at most once per ``interval``, when a connection opens or closes or a request
begins. A worker that died is no longer counted: the first worker to notice removes its file.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path

from campuscard.platform import metrics

ENV = "CAMPUSCARD_BALANCE_DIR"


@dataclass
class Share:
    """What one worker should shed, from every live worker's count."""

    own: int
    total: int
    workers: int

    def excess(self, slack: int) -> int:
        fair = math.ceil(self.total / self.workers)
        return max(0, self.own - fair - slack)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


class ConnectionBalance:
    """One per worker process; see the module's docstring."""

    def __init__(
        self, directory: Path, *, interval: float = 1.0, slack: int = 0, pid: int | None = None
    ) -> None:
        self.directory = directory
        self.interval = interval
        self.slack = slack
        self.pid = os.getpid() if pid is None else pid
        self.path = directory / str(self.pid)
        self.to_shed = 0
        self.shed_total = 0
        self._next = 0.0
        self.path.write_text("0")  # counted from its start, before its first connection

    def share(self, own: int) -> Share:
        """Write this worker's count and read every live worker's."""
        self.path.write_text(str(own))
        total, workers = own, 1
        for entry in os.scandir(self.directory):
            if not entry.name.isdigit() or int(entry.name) == self.pid:
                continue
            if not _alive(int(entry.name)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)  # a worker that died (uvicorn starts another)
                continue
            try:
                count = int(Path(entry.path).read_text())
            except (OSError, ValueError):
                continue  # gone, or caught between its truncation and its write
            total += count
            workers += 1
        return Share(own, total, workers)

    def tick(self, connections: Sized, now: float | None = None) -> None:
        """At most once per interval: how many of the next requests close their connection."""
        now = time.monotonic() if now is None else now
        if now < self._next:
            return
        self._next = now + self.interval
        try:
            self.to_shed = self.share(len(connections)).excess(self.slack)
        except OSError:
            self.to_shed = 0  # the directory is gone: serve on, unbalanced

    def should_close(self, connections: Sized) -> bool:
        """Whether the request now beginning is answered with ``Connection: close``."""
        self.tick(connections)
        if self.to_shed <= 0:
            return False
        self.to_shed -= 1
        self.shed_total += 1
        metrics.CONNECTIONS_REBALANCED.inc()
        return True


_worker: list[ConnectionBalance | None] = []


def worker_balance() -> ConnectionBalance | None:
    """This worker's balance when its server asked for one (several workers), else none;
    made once per process."""
    if not _worker:
        directory = os.environ.get(ENV)
        made = None
        if directory and Path(directory).is_dir():
            with contextlib.suppress(OSError):
                made = ConnectionBalance(Path(directory))
        _worker.append(made)
    return _worker[0]
