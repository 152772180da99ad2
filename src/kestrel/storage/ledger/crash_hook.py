"""A test hook for the crash campaign: stall the process at a chosen ledger write, so a test can
kill -9 it exactly between an order's submission and its acknowledgement.

Inert unless the environment variable `KESTREL_LEDGER_CRASH_HOOK` is set (to a process's own
environment: it is read at each passage, which costs a dictionary look-up) to
`<point>:<n>:<marker file>`, where point is

- `after_submit`: just after the n-th SUBMITTED order is committed (the request has not left yet);
- `before_ack`: just before the n-th acknowledgement of a SUBMITTED order is committed (the exchange
  has the order, the ledger does not know it yet).

At that point the hook writes the marker file (so the test knows where the process is) and blocks
the whole process; nothing else happens until it is killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENVIRONMENT_VARIABLE = "KESTREL_LEDGER_CRASH_HOOK"
POINTS = ("after_submit", "before_ack")
STALL_S = 3600.0


class CrashHook:
    def __init__(self, setting: str | None) -> None:
        self.point: str | None = None
        self.occurrence = 0
        self.marker: Path | None = None
        self._seen = 0
        if not setting:
            return
        point, occurrence, marker = setting.split(":", 2)
        if point not in POINTS:
            raise ValueError(f"{ENVIRONMENT_VARIABLE}: point must be one of {POINTS}, got {point!r}")
        self.point, self.occurrence, self.marker = point, int(occurrence), Path(marker)

    @property
    def armed(self) -> bool:
        return self.point is not None

    def reached(self, point: str, subject: str) -> None:
        """Count one passage at `point`; at the chosen one, mark and stall until killed."""
        if point != self.point:
            return
        self._seen += 1
        if self._seen != self.occurrence or self.marker is None:
            return
        self.marker.write_text(f"{point} {subject}\n")
        time.sleep(STALL_S)  # the whole process stops here, as a crash at this instant would leave it


_hook = CrashHook(None)
_setting: str | None = None


def armed() -> bool:
    return bool(os.environ.get(ENVIRONMENT_VARIABLE))


def reached(point: str, subject: str) -> None:
    global _hook, _setting
    setting = os.environ.get(ENVIRONMENT_VARIABLE)
    if not setting:
        return
    if setting != _setting:
        _hook, _setting = CrashHook(setting), setting
    _hook.reached(point, subject)
