"""In IPython and Jupyter, edgebench's own errors show as their message, not as a chained library traceback: the
message already says what failed and how to fix it. ``eb.traceback()`` prints the whole chain when it is needed."""

from __future__ import annotations

import traceback as _traceback
from typing import Any

from .core.errors import EdgebenchError

_last: list[str] = []


def short(shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """IPython's custom handler: the error's type and message, its details, and where the rest is."""
    _last[:] = _traceback.format_exception(etype, value, tb)
    lines = [f"{etype.__name__}: {value}"]
    details = getattr(value, "details", None) or {}
    if details:
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in details.items()))
    lines.append("  (edgebench.traceback() prints the full traceback)")
    shell._showtraceback(etype, value, lines)  # the cell's error output (ipykernel: ename, evalue, these lines)
    return lines


def install() -> bool:
    """Show edgebench errors short in the running IPython shell, if any (done on ``import edgebench``)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((EdgebenchError,), short)
    return True


def traceback() -> str:
    """The full traceback of the last edgebench error shown short, chained causes included."""
    text = "".join(_last) or "no edgebench error has been shown in this session"
    print(text)
    return text
