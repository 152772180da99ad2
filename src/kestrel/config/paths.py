"""Where things are on disk: the shared real Binance recordings, the data directory."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA_ENV = "KESTREL_SHARED_DATA"


def shared_data_dir() -> Path | None:
    """The folder of real recorded Binance data (``shared/data/binance``), or None when absent.

    Looked up in `$KESTREL_SHARED_DATA`, then beside every parent of the working directory and of this
    package (a checkout lives next to ``shared/``, as CI lays it out).
    """
    configured = os.environ.get(SHARED_DATA_ENV)
    if configured:
        path = Path(configured)
        return path if path.is_dir() else None
    starts = [Path.cwd().resolve(), Path(__file__).resolve()]
    for start in starts:
        for parent in [start, *start.parents]:
            candidate = parent / "shared" / "data" / "binance"
            if candidate.is_dir():
                return candidate
    return None
