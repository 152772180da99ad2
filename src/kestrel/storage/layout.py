"""The on-disk layout of recorded market data (ARCHITECTURE.md §4).

    <root>/market/{spot|futures}/{stream}/symbol={SYM}/date=YYYY-MM-DD/hour=HH/part-{n}.parquet
    <root>/_journal/                 recorder journals, lock, recovery reports

`root` is the directory given to `kestrel ingest --record DIR` / `kestrel data ... DIR`. Partitions are
by the event's exchange time (`ts_event`, UTC). Files being written carry a leading dot and a `.tmp`
suffix until they are complete, so no reader or glob ever sees a partial file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kestrel.core.enums import Market
from kestrel.core.errors import DataError

HOUR_NS = 3_600 * 1_000_000_000
MARKET_DIR = "market"
JOURNAL_DIR = "_journal"
PART_PATTERN = re.compile(r"^part-(\d+)\.parquet$")
TMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    """One partition directory: market, stream, symbol and the UTC hour (as hours since the epoch)."""

    market: Market
    stream: str
    symbol: str
    hour: int

    @property
    def date_text(self) -> str:
        return datetime.fromtimestamp(self.hour * 3600, UTC).strftime("%Y-%m-%d")

    @property
    def hour_text(self) -> str:
        return f"{self.hour % 24:02d}"

    @property
    def relative(self) -> str:
        return f"{self.market.value}/{self.stream}/symbol={self.symbol}/date={self.date_text}/hour={self.hour_text}"

    def directory(self, root: Path) -> Path:
        return root / MARKET_DIR / self.relative

    @property
    def start_ns(self) -> int:
        return self.hour * HOUR_NS

    @classmethod
    def parse(cls, relative: str) -> Partition:
        """The inverse of `relative`; raises DataError for anything else."""
        try:
            market, stream, symbol_part, date_part, hour_part = relative.split("/")
            symbol = symbol_part.removeprefix("symbol=")
            day = datetime.strptime(date_part.removeprefix("date="), "%Y-%m-%d").replace(tzinfo=UTC)
            hour = int(hour_part.removeprefix("hour="))
            if not (0 <= hour < 24) or not symbol_part.startswith("symbol="):
                raise ValueError(relative)
            return cls(Market(market), stream, symbol, int(day.timestamp()) // 3600 + hour)
        except ValueError:
            raise DataError(f"not a partition path: {relative!r}") from None


def resolve_root(path: Path) -> Path:
    """Accept the recording root or its `market/` folder."""
    path = Path(path)
    if path.name == MARKET_DIR and not (path / MARKET_DIR).exists():
        return path.parent
    return path


def part_number(path: Path) -> int | None:
    match = PART_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


def list_parts(directory: Path) -> list[Path]:
    """Complete part files of one partition, by part number."""
    if not directory.is_dir():
        return []
    numbered = [(number, path) for path in directory.iterdir() if (number := part_number(path)) is not None]
    return [path for _, path in sorted(numbered)]


def iter_partitions(root: Path) -> list[tuple[Partition, Path]]:
    """Every partition directory under `root`, sorted (market, stream, symbol, hour)."""
    base = root / MARKET_DIR
    found: list[tuple[Partition, Path]] = []
    if not base.is_dir():
        return found
    for hour_dir in base.glob("*/*/symbol=*/date=*/hour=*"):
        if not hour_dir.is_dir():
            continue
        try:
            partition = Partition.parse(hour_dir.relative_to(base).as_posix())
        except (DataError, ValueError):
            continue
        found.append((partition, hour_dir))
    found.sort()
    return found
