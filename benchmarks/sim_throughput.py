"""How many messages/s the simulator sustains on one core, and what share of the core it takes.

Runs `kestrel sim serve` (300 USD-M symbols by default) in its own process, subscribes the full market
(bookTicker, aggTrade, depth@100ms per symbol, sharded 100 streams per connection) from this process,
and for each rate scale measures over `--seconds`: messages received per second, the simulator's CPU
share (user + system time of its process / wall time, from /proc), and the event-time→receipt latency
(both clocks are this machine's). Prints one JSON document.

    ./dev run python benchmarks/sim_throughput.py --scales 1,5,20 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from kestrel.core.clock import LiveClock

ROOT = Path(__file__).resolve().parents[1]
EVENT_TIME = re.compile(rb'"E":(\d+)')
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime + stime


async def measure(symbols: int, scale: float, seconds: float, warmup: float) -> dict[str, Any]:
    stats_file = Path(tempfile.mkdtemp()) / "stats.json"
    command = [
        sys.executable, "-m", "kestrel.cli", "sim", "serve", "--symbols", str(symbols), "--markets", "futures",
        "--port", "0", "--rate-scale", str(scale), "--log-level", "ERROR", "--stats-json", str(stats_file),
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    clock = LiveClock()
    try:
        assert server.stdout is not None
        urls = json.loads(server.stdout.readline())
        async with aiohttp.ClientSession() as session:
            rest, ws_base = urls["rest_url"], urls["ws_url"]
            async with session.get(f"{rest}/fapi/v1/exchangeInfo") as response:
                names = [entry["symbol"].lower() for entry in (await response.json())["symbols"]]
            public = [f"{name}@{kind}" for name in names for kind in ("bookTicker", "depth@100ms")]
            market = [f"{name}@aggTrade" for name in names]
            shards = [("/public", public[i : i + 100]) for i in range(0, len(public), 100)]
            shards += [("/market", market[i : i + 100]) for i in range(0, len(market), 100)]
            connections = [
                await session.ws_connect(f"{ws_base}{route}/stream?streams={'/'.join(streams)}", max_msg_size=0)
                for route, streams in shards
            ]
            counts = {"messages": 0}
            latencies: list[int] = []
            measuring = asyncio.Event()

            async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
                async for message in ws:
                    if not measuring.is_set():
                        continue
                    counts["messages"] += 1
                    if counts["messages"] % 7 == 0:  # sample: parsing every frame would load the reader
                        found = EVENT_TIME.search(message.data.encode())
                        if found:
                            latencies.append(clock.timestamp_ms() - int(found.group(1)))

            readers = [asyncio.create_task(read(ws)) for ws in connections]
            await asyncio.sleep(warmup)
            cpu_before, wall_before = cpu_seconds(server.pid), clock.monotonic_ns()
            measuring.set()
            await asyncio.sleep(seconds)
            measuring.clear()
            cpu_after, wall_after = cpu_seconds(server.pid), clock.monotonic_ns()
            for task in readers:
                task.cancel()
            for ws in connections:
                await ws.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    wall = (wall_after - wall_before) / 1e9
    latencies.sort()
    stats = json.loads(stats_file.read_text())
    return {
        "rate_scale": scale,
        "connections": len(connections),
        "streams": len(public) + len(market),
        "messages_per_s": round(counts["messages"] / wall),
        "simulator_cpu_share_of_one_core": round((cpu_after - cpu_before) / wall, 3),
        # capacity independent of how much CPU the scheduler gave us on a shared machine
        "messages_per_simulator_cpu_second": round(counts["messages"] / max(cpu_after - cpu_before, 1e-9)),
        "simulator_max_behind_ms": stats["pump"]["max_behind_ms"],
        "event_to_receipt_latency_ms": {
            "p50": statistics.median(latencies) if latencies else None,
            "p99": latencies[int(len(latencies) * 0.99)] if latencies else None,
            "samples": len(latencies),
        },
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--scales", default="1,5,20", help="Comma-separated rate scales to measure")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    arguments = parser.parse_args()
    runs = [await measure(arguments.symbols, float(scale), arguments.seconds, arguments.warmup)
            for scale in arguments.scales.split(",")]  # fmt: skip
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "benchmark": "sim_throughput",
                "symbols": arguments.symbols,
                "market": "futures",
                "streams_per_symbol": ["bookTicker", "depth@100ms", "aggTrade"],
                "machine_load_average_1m": round(load[0], 2),
                "cpus": os.cpu_count(),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
