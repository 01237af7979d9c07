"""One run at a time per cache and endpoint: two runs that would score the same prompts take turns, so the
second one is served from the cache instead of paying for every prompt again (two processes auditing 12
items on one cache scored all 288 prompts twice before). Runs against other endpoints share the cache
freely (SQLite in WAL mode).

A turn is an exclusive `flock` on `<cache>.locks/<sha256(endpoint)[:16]>`. The kernel releases it when its
process ends, however it ends (kill -9 included), so a crash never leaves a stale lock. The holder writes
its pid and start time into the file for the notice a waiting run shows.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from auditor.errors import CacheError


class EndpointTurn:
    def __init__(self, cache_path: Path, endpoint: str) -> None:
        self.path = Path(f"{cache_path}.locks") / hashlib.sha256(endpoint.encode()).hexdigest()[:16]
        self._fh: IO[str] | None = None

    async def wait(self, on_wait: Callable[[str], None] | None = None, poll: float = 0.2) -> None:
        """Until this run holds the turn; `on_wait` is told once who holds it, if anyone does."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115  (held until release)
        except OSError as err:
            raise CacheError(f"cannot lock the cache for this endpoint ({self.path}): {err.strerror}") from None
        self._fh = fh
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    fh.seek(0)
                    on_wait(fh.read().strip() or "another auditor run")
                    told = True
                await asyncio.sleep(poll)  # cancellable (Ctrl-C, --max-time), unlike a blocking flock
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, since {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        fh.flush()

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor releases the lock
            self._fh = None
