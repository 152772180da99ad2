"""The HTML report of a run: metrics, equity / drawdown / exposure plots, round trips.

One self-contained file with inline SVG: it opens offline in any browser and weighs kilobytes, where a
plotting library would embed megabytes of JavaScript in every run directory (the reason this small
plotter is hand-written).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from kestrel.backtest.metrics import RoundTrip

WIDTH, HEIGHT, PAD = 960, 220, 72
MAX_POINTS = 2000


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _downsample(xs: Sequence[int], ys: Sequence[float]) -> tuple[list[int], list[float]]:
    """At most ~MAX_POINTS points, always keeping the last one."""
    step = max(1, len(xs) // MAX_POINTS)
    indices = list(range(0, len(xs), step))
    if indices[-1] != len(xs) - 1:
        indices.append(len(xs) - 1)
    return [xs[i] for i in indices], [ys[i] for i in indices]


def svg_line(title: str, xs: Sequence[int], ys: Sequence[float], color: str = "#1f77b4", fill: bool = False) -> str:
    """A line chart of ys over time xs (ns), with min / max / start / end labels."""
    if len(xs) < 2:
        return f'<p class="empty">{html.escape(title)}: not enough points</p>'
    xs, ys = _downsample(xs, ys)
    x0, x1 = xs[0], xs[-1]
    low, high = min(ys), max(ys)
    span_y = high - low or 1.0
    span_x = (x1 - x0) or 1
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def point(x: int, y: float) -> str:
        return f"{PAD + (x - x0) / span_x * inner_w:.1f},{PAD + (high - y) / span_y * inner_h:.1f}"

    points = " ".join(point(x, y) for x, y in zip(xs, ys, strict=True))
    area = ""
    if fill:
        base = f"{PAD + inner_w:.1f},{PAD + inner_h:.1f} {PAD:.1f},{PAD + inner_h:.1f}"
        area = f'<polygon points="{points} {base}" fill="{color}" fill-opacity="0.15" stroke="none"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img">'
        f"<title>{html.escape(title)}</title>"
        f'<text x="{PAD}" y="20" class="t">{html.escape(title)}</text>'
        f'<rect x="{PAD}" y="{PAD}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#ccc"/>'
        f"{area}"
        f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>'
        f'<text x="{PAD - 4}" y="{PAD + 4}" class="a" text-anchor="end">{high:,.2f}</text>'
        f'<text x="{PAD - 4}" y="{PAD + inner_h}" class="a" text-anchor="end">{low:,.2f}</text>'
        f'<text x="{PAD}" y="{HEIGHT - 14}" class="a">{_time(x0)}</text>'
        f'<text x="{PAD + inner_w}" y="{HEIGHT - 14}" class="a" text-anchor="end">{_time(x1)}</text>'
        "</svg>"
    )


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    return html.escape(str(value))


def render_report(
    run_id: str,
    params: Mapping[str, object],
    metrics: Mapping[str, object],
    equity: Sequence[tuple[int, float, float]],
    trips: Sequence[RoundTrip],
) -> str:
    times = [t for t, _, _ in equity]
    values = [v for _, v, _ in equity]
    peak = 0.0
    drawdown = []
    for value in values:
        peak = max(peak, value)
        drawdown.append(-(1 - value / peak) * 100 if peak else 0.0)
    exposure = [x for _, _, x in equity]
    metric_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_format(v)}</td></tr>" for k, v in metrics.items())
    param_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_format(v)}</td></tr>" for k, v in params.items())
    trip_rows = "".join(
        f"<tr><td>{html.escape(t.symbol)}</td><td>{t.side}</td><td>{_time(t.ts_open)}</td><td>{_time(t.ts_close)}</td>"
        f"<td>{t.quantity}</td><td>{t.entry_price:.6g}</td><td>{t.exit_price:.6g}</td>"
        f'<td class="{"win" if t.pnl > 0 else "loss"}">{t.pnl:.6g}</td></tr>'
        for t in trips[:500]
    )
    more = f"<p>{len(trips) - 500} more round trips in fills.csv</p>" if len(trips) > 500 else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Kestrel backtest {html.escape(run_id)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin:8px 0 24px}}
th,td{{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}} th{{background:#f6f6f6}}
.t{{font-size:14px;font-weight:600}} .a{{font-size:11px;fill:#555}} .win{{color:#16803c}} .loss{{color:#b42318}}
.grid{{display:flex;gap:32px;flex-wrap:wrap}}
</style></head><body>
<h1>Backtest {html.escape(run_id)}</h1>
<div class="grid"><div><h2>Metrics</h2><table id="metrics">{metric_rows}</table></div>
<div><h2>Parameters</h2><table id="params">{param_rows}</table></div></div>
<h2>Equity</h2>{svg_line("Equity (quote asset)", times, values, "#1f77b4")}
{svg_line("Drawdown (%)", times, drawdown, "#b42318", fill=True)}
{svg_line("Gross exposure (quote asset)", times, exposure, "#7a5af8", fill=True)}
<h2>Round trips ({len(trips)})</h2>
<table id="trips"><tr><th>symbol</th><th>side</th><th>opened</th><th>closed</th>
<th>quantity</th><th>entry</th><th>exit</th><th>PnL</th></tr>
{trip_rows}</table>{more}
</body></html>
"""
