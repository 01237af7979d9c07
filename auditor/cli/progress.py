"""The progress bar: rate and ETA over prompts actually sent; cached and unsent prompts shown apart.

The bar's total is the prompts still to send: it starts at every planned prompt and shrinks as the
scheduler finds prompts in the cache (they cost nothing and take no time, so counting them as
progress would make a resumed run's rate and ETA meaningless).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from auditor.scoring.scheduler import PromptFate


@dataclass
class Progress:
    enabled: bool
    cached: int = 0
    unsent: int = 0
    _bar: Any = field(default=None, init=False)

    def start(self, total: int) -> None:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="prompt", desc="sent", file=sys.stderr, dynamic_ncols=True)

    def advance(self, n: int, fate: PromptFate) -> None:
        if fate == "cached":
            self.cached += n
        elif fate == "unsent":
            self.unsent += n
        bar = self._bar
        if bar is None:
            return
        if fate == "sent":
            bar.update(n)
            return
        bar.total = max(bar.n, bar.total - n)
        bar.set_postfix_str(f"{self.cached} cached" + (f", {self.unsent} not sent" if self.unsent else ""))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
