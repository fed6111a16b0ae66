"""The one exception tree of edgebench: every error a user can see, with the context to act on it.

::

    EdgebenchError
    ├── InvalidInputError        a value given by the user is wrong (also a ValueError)
    │   ├── InvalidNameError     model name or reference
    │   └── SampleError          sample rows that do not fit the model
    ├── ExportError              an estimator or ONNX file that cannot become a stored model
    │   └── ParityError          ONNX outputs differ from the original model beyond tolerance
    ├── StoreError               the model store cannot be read or written
    │   ├── ModelNotFoundError   no such model or version (also a LookupError)
    │   └── StoreCorruptError    the SQLite index is damaged
    ├── ProfileError             a device profile that is unknown or malformed
    ├── BenchError               a benchmark that could not run
    ├── EngineUnavailableError   no Docker Engine reachable
    ├── BuildError               an image build that failed
    ├── ContainerTestError       an image that could not be tested
    ├── PublishError             a push, pull-back or transfer that failed
    ├── SigningError             signing, attesting or verifying with cosign that failed
    ├── DeployError              rendering, promoting or bundling for edge sites that cannot go on
    │   └── SitesError           a sites.yaml that is wrong (file, site and field named; also a ValueError)
    ├── MonitorError             counts that cannot be read or do not belong to the model
    └── NotebookError            a notebook run whose cell raised

Each error carries structured fields (``model``, ``device``, ``image``, ``command``, ``registry``, ...) in
``details`` so that the CLI, the REST API and the notebook panels can show them without parsing the message.
"""

from __future__ import annotations

from typing import Any


class EdgebenchError(Exception):
    """Base of every edgebench error; ``str(err)`` is the message a user sees."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "type": type(self).__name__, **_jsonable(self.details)}


class InvalidInputError(EdgebenchError, ValueError):
    """A value given by the user is wrong; the message names it and what is expected."""


class InvalidNameError(InvalidInputError):
    """A model name or ``name:version`` reference that edgebench cannot use."""


class SampleError(InvalidInputError):
    """Sample rows that do not fit the model (shape, type, columns, missing values)."""


class ExportError(EdgebenchError):
    """An estimator or ONNX file that cannot become a stored model."""


class ParityError(ExportError):
    """Raised when parity fails; ``report`` holds the full :class:`ParityReport`."""

    def __init__(self, message: str, report: Any, **details: Any) -> None:
        super().__init__(message, **details)
        self.report = report


class StoreError(EdgebenchError):
    """The model store cannot be read or written."""


class ModelNotFoundError(StoreError, LookupError):
    """No such model or version in the store."""


class StoreCorruptError(StoreError):
    """The store is damaged; the message names what and the command that recovers it."""


class ProfileError(EdgebenchError):
    """A device profile that is unknown or malformed (file and field named)."""


class BenchError(EdgebenchError):
    """A benchmark that could not run."""


class EngineUnavailableError(EdgebenchError):
    """No Docker Engine answers; the message says how to start or point to one."""


class BuildError(EdgebenchError):
    """An image build that failed."""


class ContainerTestError(EdgebenchError):
    """An image that could not be tested at all (a failing check is a report, not this)."""


class PublishError(EdgebenchError):
    """A push, pull-back or transfer that failed."""


class SigningError(EdgebenchError):
    """Signing, attesting or verifying that failed (cosign's own reason, said in a user's words)."""


class DeployError(EdgebenchError):
    """Rendering, promoting, rolling back or bundling for edge sites that cannot go on (the gate names why)."""


class SitesError(DeployError, ValueError):
    """A sites.yaml that is wrong: the file, the site and the field are named."""


class MonitorError(EdgebenchError):
    """Drift counts that cannot be read (source unreachable, not Prometheus) or belong to another model."""


class NotebookError(EdgebenchError):
    """A notebook run whose cell raised; ``details['run']`` holds what the run wrote."""


def first_line(exc: BaseException) -> str:
    """The first line of a library's exception: what a user is told, without the library's full story."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, str | int | float | bool | list | dict):
            out[key] = value
        elif hasattr(value, "to_dict"):
            out[key] = value.to_dict()
        else:
            out[key] = str(value)
    return out
