"""The UI tests drive Chromium with Playwright's sync API, which runs its own event loop in this thread."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture
def jp_asyncio_loop():
    """pytest-jupyter's autouse loop, but not made current: Playwright must not find (and reuse) it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
