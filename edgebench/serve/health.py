"""Container HEALTHCHECK: exit 0 when the server on this host answers ready, else 1."""

import os
import sys
import urllib.request

port = os.environ.get("EDGEBENCH_PORT", "8080")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
