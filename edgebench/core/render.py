"""Small HTML building blocks for results shown in notebooks (``_repr_html_``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

#: colors from the notebook's theme (JupyterLab's variables), with fallbacks for other front ends
BRAND, ERROR, WARN, TEXT, MUTED, GRID = ("var(--jp-brand-color1, #1976d2)", "var(--jp-error-color1, #d32f2f)",
                                         "var(--jp-warn-color1, #f57c00)", "var(--jp-ui-font-color1, #333)",
                                         "var(--jp-ui-font-color2, #666)", "var(--jp-border-color2, #ccc)")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict(passed: bool | None, label: str | None = None) -> str:
    if passed is None:
        return '<b style="color:#666">n/a</b>'
    color, word = ("#1a7f37", "pass") if passed else ("#cf222e", "fail")
    return f'<b style="color:{color}">{escape(label or word)}</b>'


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def plural(n: int, word: str) -> str:
    """``1 thread``, ``2 threads``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def latency_chart(rows: Sequence[tuple[str, float, float, float, str]], slo_ms: float | None = None) -> str:
    """SVG of ``(name, p99 low, p99 high, p50, verdict)`` per device on a log scale (so 0.05 ms and a 20 ms SLO
    both show), the SLO as a dashed line; colored by the notebook's theme."""
    values = [v for r in rows for v in r[1:4] if v > 0] + ([slo_ms] if slo_ms else [])
    low = 10 ** math.floor(math.log10(min([*values, 1.0])))
    high = 10 ** math.ceil(math.log10(max([*values, low * 10])))
    span = math.log10(high / low)
    label, width, step = 130, 300, 22
    height = len(rows) * step + 24

    def x(v: float) -> float:
        return label + (math.log10(max(v, low)) - math.log10(low)) / span * width

    parts = []
    tick = low
    while tick <= high * 1.0001:
        for m in ((1, 2, 5) if span <= 2 else (1,)):
            if tick * m <= high * 1.0001:
                parts.append(f'<line x1="{x(tick * m):.1f}" x2="{x(tick * m):.1f}" y1="0" y2="{height - 18}" '
                             f'stroke="{GRID}"/><text x="{x(tick * m):.1f}" y="{height - 4}" font-size="10" '
                             f'text-anchor="middle" fill="{MUTED}">{_ms(tick * m)}</text>')
        tick *= 10
    for i, (name, lo, hi, p50, verdict_) in enumerate(rows):
        y = i * step + 12
        color = ERROR if verdict_ in ("fail", "does not fit") else WARN if verdict_ == "uncertain" else BRAND
        parts.append(f'<text x="{label - 6}" y="{y + 4}" font-size="11" text-anchor="end" fill="{TEXT}">'
                     f'{escape(name)}</text><rect x="{x(lo):.1f}" y="{y - 5}" width="{max(x(hi) - x(lo), 2):.1f}" '
                     f'height="10" fill="{color}" opacity="0.8"><title>{escape(name)}: p99 {_ms(lo)}-{_ms(hi)} ms, '
                     f'p50 {_ms(p50)} ms, {escape(verdict_)}</title></rect>'
                     f'<circle cx="{x(p50):.1f}" cy="{y}" r="3" fill="{TEXT}"/>')
    if slo_ms:
        parts.append(f'<line x1="{x(slo_ms):.1f}" x2="{x(slo_ms):.1f}" y1="0" y2="{height - 18}" stroke="{ERROR}" '
                     f'stroke-dasharray="4 3" stroke-width="1.5"><title>SLO p99 {slo_ms:g} ms</title></line>')
    return (f'<svg width="{label + width + 10}" height="{height}" role="img" aria-label="predicted p99 latency per '
            f'device, log scale">{"".join(parts)}</svg>')
