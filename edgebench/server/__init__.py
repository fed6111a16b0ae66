"""The Jupyter server extension: the REST API the JupyterLab panel talks to (docs/rest.md)."""

from __future__ import annotations

import atexit
from typing import Any

from .. import config


def _load_jupyter_server_extension(server_app: Any) -> None:
    from .handlers import setup_handlers

    home = str(config.home())
    manager = setup_handlers(server_app.web_app, home)
    server_app.log.info(f"edgebench: REST API at /edgebench/ over the store {home}")
    atexit.register(manager.shutdown)  # no step keeps running after the server
