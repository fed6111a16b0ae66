"""``sites.yaml``: the edge sites a model goes to, checked field by field (file, site and field named on error).

::

    gitops:                                   # where the rendered files live (for Argo CD's ApplicationSet)
      repo_url: https://git.example.com/edge/gitops.git
      revision: main
    hub: registry.example.com/edge/digits-rf  # the published repository sites pull from (unless said otherwise)
    sites:
      - name: plant-7
        profile: rpi4-1gb                     # a device profile: arch, usable RAM, cores
        wave: 0                               # waves 0, 1, 2... without gaps; wave 0 goes first
        target: kubernetes                    # kubernetes (k3s, MicroShift) | kserve | quadlet
        cluster: https://plant-7.example.com:6443   # Argo CD destination (kubernetes, kserve)
        namespace: edge
        mirror: plant-7-registry:5000/edge/digits-rf  # a registry at the site that holds what is promoted
        disconnected: false                   # true: bundles carried by hand, nothing pulled
        endpoint: http://plant-7.example.com:8080     # for health and status (optional)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ProfileError, SitesError
from ..core.profiles import DeviceProfile
from ..profiles import load_profile

TARGETS = ("kubernetes", "kserve", "quadlet")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS label: it names folders and objects
SITE_FIELDS = {"name", "profile", "wave", "target", "cluster", "namespace", "mirror", "disconnected", "endpoint",
               "labels"}
TOP_FIELDS = {"gitops", "hub", "sites"}


@dataclass(frozen=True)
class Site:
    name: str
    profile: DeviceProfile
    wave: int
    target: str
    cluster: str = "https://kubernetes.default.svc"
    namespace: str = "edge"
    mirror: str | None = None
    disconnected: bool = False
    endpoint: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.profile.arch

    def pulls_from(self, hub: str) -> str:
        """The repository this site's nodes pull the image from."""
        return self.mirror or hub


@dataclass(frozen=True)
class Sites:
    path: str
    hub: str
    sites: list[Site]
    repo_url: str = ""
    revision: str = "main"

    @property
    def waves(self) -> list[int]:
        return sorted({s.wave for s in self.sites})

    def wave(self, number: int) -> list[Site]:
        found = [s for s in self.sites if s.wave == number]
        if not found:
            raise SitesError(f"{self.path}: there is no wave {number}; waves are {self.waves}", path=self.path)
        return found

    def site(self, name: str) -> Site:
        found = next((s for s in self.sites if s.name == name), None)
        if found is None:
            raise SitesError(f"{self.path}: no site named {name!r}; sites are "
                             f"{', '.join(s.name for s in self.sites)}", path=self.path)
        return found


def load_sites(path: str | os.PathLike[str]) -> Sites:
    """Read and check ``sites.yaml``."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise SitesError(f"sites file not found: {file}", path=str(file)) from None
    except (OSError, yaml.YAMLError) as exc:
        raise SitesError(f"{file} is not readable YAML: {exc}", path=str(file)) from None
    return parse_sites(data, str(file))


def parse_sites(data: Any, path: str = "sites.yaml") -> Sites:
    from ..publish.registry import parse_destination

    if not isinstance(data, dict):
        raise SitesError(f"{path}: expected a mapping with 'hub' and 'sites'", path=path)
    unknown = sorted(set(data) - TOP_FIELDS)
    if unknown:
        raise SitesError(f"{path}: unknown field {unknown[0]!r}; a sites file has {', '.join(sorted(TOP_FIELDS))}",
                         path=path, field=unknown[0])
    hub = _text(data, "hub", path, "the top level")
    try:
        parse_destination(hub)
    except Exception as exc:  # an InvalidInputError: say it with the file and field
        raise SitesError(f"{path}: field 'hub': {exc}", path=path, field="hub") from None
    gitops = data.get("gitops") or {}
    if not isinstance(gitops, dict):
        raise SitesError(f"{path}: field 'gitops' must be a mapping with repo_url and revision", path=path)
    raw = data.get("sites")
    if not isinstance(raw, list) or not raw:
        raise SitesError(f"{path}: field 'sites' must be a non-empty list of sites", path=path, field="sites")
    sites = [_site(item, i, path) for i, item in enumerate(raw)]
    seen: set[str] = set()
    for site in sites:
        if site.name in seen:
            raise SitesError(f"{path}: site {site.name!r} is listed twice", path=path, site=site.name)
        seen.add(site.name)
    waves = sorted({s.wave for s in sites})
    if waves != list(range(len(waves))):
        missing = sorted(set(range(max(waves) + 1)) - set(waves))
        raise SitesError(f"{path}: waves must run 0, 1, 2... without gaps: no site is in wave {missing[0]} "
                         f"(waves used: {waves})", path=path, field="wave")
    for site in sites:
        if site.mirror:
            try:
                parse_destination(site.mirror)
            except Exception as exc:
                raise SitesError(f"{path}: site {site.name!r}, field 'mirror': {exc}", path=path, site=site.name,
                                 field="mirror") from None
    return Sites(path, hub, sites, str(gitops.get("repo_url", "")), str(gitops.get("revision", "main")))


def _site(item: Any, index: int, path: str) -> Site:
    where = f"site #{index + 1}"
    if not isinstance(item, dict):
        raise SitesError(f"{path}: {where} must be a mapping of fields", path=path)
    name = _text(item, "name", path, where)
    if not _NAME.match(name):
        raise SitesError(f"{path}: {where}: name {name!r} must be a DNS label (lowercase letters, digits, '-', up "
                         "to 63): it names folders and Kubernetes objects", path=path, field="name")
    where = f"site {name!r}"
    unknown = sorted(set(item) - SITE_FIELDS)
    if unknown:
        raise SitesError(f"{path}: {where}: unknown field {unknown[0]!r}; a site has "
                         f"{', '.join(sorted(SITE_FIELDS))}", path=path, site=name, field=unknown[0])
    try:
        profile = load_profile(_text(item, "profile", path, where))
    except ProfileError as exc:
        raise SitesError(f"{path}: {where}, field 'profile': {exc.message}", path=path, site=name,
                         field="profile") from None
    wave = item.get("wave")
    if isinstance(wave, bool) or not isinstance(wave, int) or wave < 0:
        raise SitesError(f"{path}: {where}, field 'wave' must be a whole number >= 0, got {wave!r}", path=path,
                         site=name, field="wave")
    target = _text(item, "target", path, where)
    if target not in TARGETS:
        raise SitesError(f"{path}: {where}, field 'target' is {target!r}; use one of {', '.join(TARGETS)}",
                         path=path, site=name, field="target")
    labels = item.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise SitesError(f"{path}: {where}, field 'labels' must map text to text", path=path, site=name,
                         field="labels")
    disconnected = item.get("disconnected", False)
    if not isinstance(disconnected, bool):
        raise SitesError(f"{path}: {where}, field 'disconnected' must be true or false", path=path, site=name,
                         field="disconnected")
    return Site(
        name=name, profile=profile, wave=wave, target=target,
        cluster=str(item.get("cluster", "https://kubernetes.default.svc")),
        namespace=str(item.get("namespace", "edge")), mirror=item.get("mirror"), disconnected=disconnected,
        endpoint=item.get("endpoint"), labels=labels,
    )


def _text(data: dict[str, Any], key: str, path: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise SitesError(f"{path}: {where}: field {key!r} is missing or not text", path=path, field=key)
    return value
