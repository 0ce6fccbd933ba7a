"""A one-line progress display on stderr, only when stderr is a terminal (never in logs or pipes)."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """`label: done/total unit (percent)`, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, enabled: bool | None = None) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._shown = False

    def update(self, label: str, done: int, total: int, unit: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        percent = f" ({100 * done // total}%)" if total else ""
        shown = f"{_human(done)}/{_human(total)}" if unit == "B" else f"{done}/{total}"
        self.stream.write(f"\r\x1b[2K{label}: {shown} {unit}{percent}".rstrip())
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False


def _human(count: float) -> str:
    for unit in ("", "k", "M", "G"):
        if count < 1000:
            return f"{count:.0f}{unit}"
        count /= 1000
    return f"{count:.0f}T"
