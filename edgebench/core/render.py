"""Small HTML building blocks for results shown in notebooks (``_repr_html_``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any


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
