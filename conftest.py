"""Root conftest: pytest only accepts plugin declarations here. pytest-jupyter gives tests/server its real
Jupyter server fixtures (jp_fetch, jp_serverapp)."""

pytest_plugins = ["pytest_jupyter.jupyter_server"]
