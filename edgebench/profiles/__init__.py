"""The device profile catalog: the YAML files in this folder, then the user's own.

Search path, later folders first (so a user's file can replace a shipped one): ``$EDGEBENCH_PROFILES``
(folders separated by ``:``), ``$EDGEBENCH_HOME/profiles``, then this package's folder. A profile may
``extends:`` another by name; its fields replace the parent's.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml

from .. import config
from ..core.errors import ProfileError
from ..core.profiles import DeviceProfile, merge, profile_from_dict

HERE = Path(__file__).parent


def search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("EDGEBENCH_PROFILES", "").split(":") if p]
    return [*extra, config.home() / "profiles", HERE]


def _files() -> dict[str, Path]:
    """Profile name (file stem) -> file, the first folder on the search path winning."""
    found: dict[str, Path] = {}
    for folder in reversed(search_path()):
        if folder.is_dir():
            for file in sorted(folder.glob("*.yaml")):
                found[file.stem] = file
    return found


def _read(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{file}: cannot read the profile: {exc}", path=str(file)) from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{file}: a profile must be a mapping of fields", path=str(file))
    if data.get("name") != file.stem:
        raise ProfileError(f"{file}: field 'name' is {data.get('name')!r}, but the file is named {file.stem}.yaml",
                           path=str(file), field="name")
    return data


def load_profile(name: str) -> DeviceProfile:
    """The profile called ``name`` (``host`` is measured on this machine, see ``edgebench.bench``)."""
    if name == "host":
        from ..bench.calibration import host_profile

        return host_profile()
    files = _files()
    if not isinstance(name, str) or name not in files:
        close = difflib.get_close_matches(str(name), [*files, "host"], n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ProfileError(
            f"unknown device {name!r}{hint} Known devices: {', '.join(sorted([*files, 'host']))}", device=str(name)
        )
    chain: list[str] = []
    data = _read(files[name])
    merged = data
    while merged.get("extends") and len(chain) < 10:
        parent = merged["extends"]
        chain.append(parent)
        if parent not in files or parent in chain[:-1] or parent == name:
            raise ProfileError(f"{files[name]}: extends {parent!r}, which is unknown or circular",
                               path=str(files[name]), field="extends")
        parent_data = _read(files[parent])
        merged = merge(parent_data, {**merged, "extends": parent_data.get("extends")})
    merged["extends"] = data.get("extends")
    profile = profile_from_dict(merged, str(files[name]))
    if profile.costs:
        from ..bench.costs import shipped

        if profile.costs not in shipped()["boards"]:
            raise ProfileError(f"{files[name]}: field 'costs' names {profile.costs!r}, which has no fitted costs; "
                               f"known boards: {', '.join(sorted(shipped()['boards']))}", path=str(files[name]),
                               field="costs")
    return profile


def list_profiles() -> list[DeviceProfile]:
    """Every profile on the search path, by name (``host`` not included: it needs a calibration)."""
    return [load_profile(name) for name in sorted(_files())]
