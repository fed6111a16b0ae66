"""Progress of long steps (build, test, bench): lines on a terminal, a bar in a notebook."""

from __future__ import annotations

import re
import sys
from typing import Any, Protocol

_STEP_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")


class Progress(Protocol):
    def step(self, done: int, total: int, message: str) -> None: ...

    def log(self, line: str) -> None: ...

    def close(self) -> None: ...


class Lines:
    """Writes each step and log line to a stream (stderr by default); ``verbose`` also echoes log lines."""

    def __init__(self, stream: Any = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose

    def step(self, done: int, total: int, message: str) -> None:
        print(f"[{done}/{total}] {message}", file=self.stream, flush=True)

    @staticmethod
    def parse(line: str) -> tuple[int, int, str] | None:
        """``(done, total, message)`` of a line that :meth:`step` wrote, else None."""
        match = _STEP_LINE.match(line)
        return (int(match[1]), int(match[2]), match[3]) if match else None

    def log(self, line: str) -> None:
        if self.verbose:
            print(f"    {line}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class Silent:
    def step(self, done: int, total: int, message: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    """An ipywidgets progress bar with the current step's text, for notebooks."""

    def __init__(self, bar: Any, label: Any) -> None:
        self.bar, self.label = bar, label

    @classmethod
    def show(cls, description: str) -> Bar:
        """A new bar and label, displayed in the current cell's output."""
        import ipywidgets as widgets
        from IPython.display import display

        bar, label = widgets.IntProgress(value=0, min=0, max=1, description=description), widgets.Label()
        display(widgets.HBox([bar, label]))
        return cls(bar, label)

    def step(self, done: int, total: int, message: str) -> None:
        self.bar.max = max(total, 1)
        self.bar.value = min(done, self.bar.max)
        self.label.value = message[:160]

    def log(self, line: str) -> None:
        pass

    def close(self) -> None:
        self.bar.value = self.bar.max
        self.bar.bar_style = "success"


def auto(description: str) -> Progress:
    """A bar inside a Jupyter kernel that has ipywidgets, else lines on stderr."""
    try:
        from IPython import get_ipython

        if get_ipython() is not None and "IPKernelApp" in get_ipython().config:
            return Bar.show(description)
    except Exception:
        pass
    return Lines()
