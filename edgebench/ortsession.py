"""The one way edgebench (outside the image's server) opens an onnxruntime session."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def session(model: bytes | str | Path, threads: int = 1, *, profile: bool = False) -> Any:
    """A CPU session with explicit threads: onnxruntime's default pool is sized from the host's physical
    cores and ignores cgroup limits. ``arena_extend_strategy=kSameAsRequested`` keeps memory close to need."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if threads == 1 else "1")
    options.add_session_config_entry("arena_extend_strategy", "kSameAsRequested")
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="edgebench-profile-")) / "ort")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
