"""edgebench: ship models trained in Jupyter to edge devices.

>>> import edgebench as eb
>>> card = eb.export_model(clf, X[:200], name="digits-rf")   # doctest: +SKIP
>>> eb.list_models()                                          # doctest: +SKIP
"""

from __future__ import annotations

import os

from . import ipython as _ipython
from .bench import benchmark
from .core.bench import BenchReport, DeviceResult
from .core.card import GoldenSample, ModelCard, TensorSpec
from .core.errors import (
    BenchError,
    BuildError,
    ContainerTestError,
    DeployError,
    EdgebenchError,
    EngineUnavailableError,
    ExportError,
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    MonitorError,
    NotebookError,
    ParityError,
    ProfileError,
    PublishError,
    SampleError,
    SigningError,
    SitesError,
    StoreCorruptError,
    StoreError,
)
from .core.images import Check, ImageRef, ImageTestReport
from .core.parity import OutputParity, ParityReport, Tolerance
from .core.profiles import SLO, DeviceProfile
from .dashboard import ModelView, show
from .export import DEFAULT_OPSET, export_model, import_onnx
from .image.builder import build_image, write_build_context
from .image.tester import test_image
from .ipython import traceback
from .monitor import DriftReport, monitor, on_drift
from .pipeline import PipelineResult, run_pipeline
from .profiles import list_profiles, load_profile
from .publish import Credentials, PublishResult, publish, sign
from .publish.archive import LoadedImage, load_archive, load_verified
from .publish.signing import VerifyReport, generate_keys, verify
from .runs import NotebookRun, SweepResult, record, run_notebook, sweep
from .store import Run, Store
from .store import open_store as _open_store
from .widgets import Workbench

__version__ = "0.1.0"

_ipython.install()  # in a notebook, edgebench's errors show as their message

__all__ = [
    "DEFAULT_OPSET",
    "SLO",
    "BenchError",
    "BenchReport",
    "BuildError",
    "Check",
    "ContainerTestError",
    "Credentials",
    "DeployError",
    "DeviceProfile",
    "DeviceResult",
    "DriftReport",
    "EdgebenchError",
    "EngineUnavailableError",
    "ExportError",
    "GoldenSample",
    "ImageRef",
    "ImageTestReport",
    "InvalidInputError",
    "InvalidNameError",
    "LoadedImage",
    "ModelCard",
    "ModelNotFoundError",
    "ModelView",
    "MonitorError",
    "NotebookError",
    "NotebookRun",
    "OutputParity",
    "ParityError",
    "ParityReport",
    "PipelineResult",
    "ProfileError",
    "PublishError",
    "PublishResult",
    "Run",
    "SampleError",
    "SigningError",
    "SitesError",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "SweepResult",
    "TensorSpec",
    "Tolerance",
    "VerifyReport",
    "Workbench",
    "__version__",
    "benchmark",
    "build_image",
    "export_model",
    "generate_keys",
    "get_model",
    "import_onnx",
    "list_models",
    "list_profiles",
    "load_archive",
    "load_profile",
    "load_verified",
    "monitor",
    "on_drift",
    "publish",
    "record",
    "remove_model",
    "run_notebook",
    "run_pipeline",
    "show",
    "sign",
    "sweep",
    "test_image",
    "traceback",
    "verify",
    "write_build_context",
]


def list_models(store: Store | str | os.PathLike[str] | None = None) -> list[ModelCard]:
    """The latest version of every stored model, by name."""
    return _open_store(store).list()


def get_model(ref: str, store: Store | str | os.PathLike[str] | None = None) -> ModelCard:
    """The card of ``"name"`` (latest version) or ``"name:version"``."""
    return _open_store(store).get(ref)


def remove_model(ref: str, store: Store | str | os.PathLike[str] | None = None) -> list[int]:
    """Remove every version of ``"name"``, or one ``"name:version"``; returns the versions removed."""
    return _open_store(store).remove(ref)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "edgebench.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "edgebench"}]
