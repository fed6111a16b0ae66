"""Model names and references (``digits-rf`` or ``digits-rf:3``): the only names that reach paths and tags."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidNameError

MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidNameError`.

    A name is 1 to 64 characters of lowercase letters, digits, ``.``, ``_`` and ``-``, starting with a letter
    or digit, so that it is safe as a file name, an image repository and a URL segment.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"model name must be a string, got {type(name).__name__}", name=repr(name))
    if not name:
        raise InvalidNameError("model name is empty: give a name such as 'digits-rf'", name=name)
    if _CONTROL.search(name):
        raise InvalidNameError(f"model name {name!r} contains control characters", name=name)
    if "/" in name or "\\" in name:
        raise InvalidNameError(f"model name {name!r} contains a path separator ('/' or '\\')", name=name)
    if ".." in name:
        raise InvalidNameError(f"model name {name!r} contains '..'", name=name)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"model name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}", name=name
        )
    if not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"model name {name!r} is not allowed: use lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
            name=name,
        )
    return name


@dataclass(frozen=True)
class ModelRef:
    """A model name with an optional version; ``version=None`` means the latest."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


def parse_ref(ref: object) -> ModelRef:
    """Parse ``"name"`` or ``"name:version"``."""
    if isinstance(ref, ModelRef):
        return ref
    if not isinstance(ref, str):
        raise InvalidNameError(f"model reference must be a string, got {type(ref).__name__}", name=repr(ref))
    name, sep, version = ref.partition(":")
    validate_name(name)
    if not sep:
        return ModelRef(name)
    if not version.isdigit() or int(version) < 1:
        raise InvalidNameError(
            f"model reference {ref!r} has version {version!r}; a version is a whole number from 1",
            name=name,
        )
    return ModelRef(name, int(version))
