"""The one check for numbers a user gives (Python API, CLI, REST): finite, of the right kind, in range."""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidInputError


def number(value: Any, name: str, *, above: float | None = None, at_least: float | None = None,
           at_most: float | None = None, whole: bool = False) -> float:
    """``value`` if it is a finite number within the bounds, else :class:`InvalidInputError` naming ``name``.

    ``above`` is an open lower bound (``above=0``: "> 0"), ``at_least``/``at_most`` closed ones; ``whole``
    asks for an integer. Booleans are refused (``True`` is not a count of seconds).

    >>> number(2, "seconds", above=0)
    2
    >>> number(float("inf"), "seconds", above=0)
    Traceback (most recent call last):
    ...
    edgebench.core.errors.InvalidInputError: seconds must be a finite number > 0, got inf
    """
    bounds = " and ".join(b for b in (
        f"> {above:g}" if above is not None else "", f">= {at_least:g}" if at_least is not None else "",
        f"<= {at_most:g}" if at_most is not None else "") if b)
    wanted = ("a whole number" if whole else "a finite number") + (f" {bounds}" if bounds else "")
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if ok and whole:
        ok = float(value).is_integer()
    if ok and ((above is not None and value <= above) or (at_least is not None and value < at_least)
               or (at_most is not None and value > at_most)):
        ok = False
    if not ok:
        raise InvalidInputError(f"{name} must be {wanted}, got {value!r}", field=name)
    return int(value) if whole else value
