"""In a notebook, edgebench's errors show their message, not the chained library traceback behind it."""

from __future__ import annotations

import pytest

IPython = pytest.importorskip("IPython")


def test_an_edgebench_error_shows_short_and_the_full_traceback_stays_available(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    import edgebench as eb
    from edgebench import ipython

    shell = InteractiveShell.instance()
    try:
        assert ipython.install()
        shell.run_cell(
            "import edgebench as eb\n"
            "def pull():\n    raise ConnectionError('lookup registry-1.docker.io: no such host')\n"
            "try:\n    pull()\n"
            "except ConnectionError as exc:\n"
            "    raise eb.BuildError(\"base image 'python:3.11-slim-bookworm' could not be pulled\", "
            "image='python:3.11-slim-bookworm') from exc\n")
        shown = capsys.readouterr()
        text = shown.out + shown.err
        assert "BuildError: base image 'python:3.11-slim-bookworm' could not be pulled" in text
        assert "image=python:3.11-slim-bookworm" in text and "edgebench.traceback()" in text
        assert "direct cause" not in text and "ConnectionError" not in text and "Traceback" not in text
        full = eb.traceback()
        assert "ConnectionError: lookup registry-1.docker.io: no such host" in full and "direct cause" in full
        shell.run_cell("raise ValueError('not ours')")
        assert "ValueError" in capsys.readouterr().out  # other errors keep IPython's usual display
    finally:
        InteractiveShell.clear_instance()
