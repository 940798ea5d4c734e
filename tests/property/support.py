"""What the Hypothesis state machines share: one event loop and one pool for every example
(a state machine's rules are synchronous; each runs its async work on this loop)."""

from __future__ import annotations

import asyncio
from typing import Any

from campuscard.db.pool import create_pool


class Env:
    """One event loop and pool shared by every example of a state machine."""

    def __init__(self, db_url: str, *, max_size: int = 6) -> None:
        self.runner = asyncio.Runner()
        self.pool: Any = self.run(create_pool(db_url, min_size=2, max_size=max_size))

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def close(self) -> None:
        self.run(self.pool.close())
        self.runner.close()
