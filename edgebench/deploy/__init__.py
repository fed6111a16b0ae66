"""Deploy to many edge sites with GitOps: render the repository, promote a tested and signed digest one wave at a
time (a gate, then one commit), roll back with a commit, bundle for disconnected sites, and read each site's state.

``promote`` reads like its steps: the release (what the store knows of the digest), the repository (clean, not
behind its remote), the gate (image tests per architecture and device, signatures and attestations, the previous
wave healthy on this digest), the site mirrors (the digest copied with its signatures), the files, the record, the
commit. Nothing is written when a step fails.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import yaml

from ..core import render as html
from ..core.errors import DeployError, EdgebenchError
from ..store import Store, open_store
from . import gitops
from .render import Release, render
from .sites import Site, Sites, load_sites

__all__ = [
    "GateCheck",
    "Promotion",
    "Release",
    "SiteStatus",
    "bundle",
    "load_sites",
    "promote",
    "release_of",
    "render_repo",
    "resolve",
    "rollback",
    "status",
    "status_file_health",
]


# -- releases: what the store knows of a published digest -------------------------------------------------------


def release_of(store: Store, reference: str) -> Release:
    """The release of ``REGISTRY/REPOSITORY@sha256:...``, from its publish run, image tests and bench."""
    from ..publish.signing import split_digest_ref
    from ..state import belongs

    repository, digest = split_digest_ref(reference)
    publish = next((r for r in store.runs(step="publish", limit=5000) if r.status == "passed"
                    and (r.outputs or {}).get("digest") == digest), None)
    if publish is None:
        raise DeployError(f"{reference} is not a digest edgebench published (no passing publish run with that "
                          "digest in the store): publish it with `edgebench publish`", reference=reference)
    out = publish.outputs or {}
    card = store.get(out["model"])
    tests = [r for r in store.runs(card.name, step="test", limit=2000) if r.status == "passed" and belongs(r, card)]
    if out.get("platforms"):
        platforms = {arch: p["digest"] for arch, p in out["platforms"].items()}
        image_ids = {arch: p["image_id"] for arch, p in out["platforms"].items()}
    else:
        test = next((t for t in tests if (t.outputs or {}).get("image_id") == out.get("image_id")), None)
        arch = ((test.outputs or {}).get("platform") or "linux/amd64").split("/")[1] if test else "amd64"
        platforms, image_ids = {arch: digest}, {arch: out.get("image_id")}
    peaks, cold = [], {}
    for arch, image_id in image_ids.items():
        mine = [(t.outputs or {}) for t in tests if (t.outputs or {}).get("image_id") == image_id]
        native = [o for o in mine if not o.get("emulated")]
        for o in native or mine:
            if o.get("peak_memory_mb"):
                peaks.append(o["peak_memory_mb"] - (o.get("emulator_baseline_mb") or 0))
            if o.get("cold_start_s"):
                cold[arch] = max(cold.get(arch, 0.0), o["cold_start_s"])
    bench = next((r for r in store.runs(card.name, step="bench", limit=500) if belongs(r, card) and r.outputs), None)
    if bench:
        peaks.append(bench.outputs["measured"]["peak_rss_mb"])
    if not peaks:
        raise DeployError(f"{card.ref} has no measured memory (no image test and no bench): test or bench it "
                          "before it goes to sites", model=card.ref)
    return Release(card.ref, card.sha256, repository, digest, platforms, max(peaks), cold)


def resolve(reference: str, sites: Sites, store: Store) -> str:
    """``REGISTRY/REPO@sha256:...`` as given; ``MODEL@sha256:...`` in the sites' hub; ``MODEL`` (or
    ``MODEL:VERSION``) as its newest digest published to the hub."""
    from ..core.names import parse_ref

    if "@" in reference:
        repository, _, digest = reference.partition("@")
        return reference if "/" in repository else f"{sites.hub}@{digest}"
    if "/" in reference:  # REGISTRY/REPO:TAG: a tag can move; sites are pinned by digest only
        raise DeployError(f"{reference!r} is a tag: promote a digest (REGISTRY/REPO@sha256:... or MODEL@sha256:...), "
                          "which `edgebench publish` prints", reference=reference)
    card = store.get(parse_ref(reference))
    publish = next((r for r in store.runs(card.name, step="publish", limit=2000) if r.status == "passed"
                    and (r.outputs or {}).get("destination") == sites.hub and r.version == card.version), None)
    if publish is None:
        raise DeployError(f"{card.ref} was never published to {sites.hub} (the hub of {sites.path}): publish it "
                          "first, or give REGISTRY/REPOSITORY@sha256:...", model=card.ref)
    return f"{sites.hub}@{publish.outputs['digest']}"  # type: ignore[index]


def _pinned_releases(store: Store, sites: Sites, repo: Path) -> dict[str, Release]:
    found: dict[str, Release] = {}
    cache: dict[str, Release] = {}
    for site, digest in gitops.pins(repo, sites).items():
        if digest not in cache:
            cache[digest] = release_of(store, f"{sites.hub}@{digest}")
        found[site] = cache[digest]
    return found


# -- render ---------------------------------------------------------------------------------------------------


def render_repo(sites_file: str | os.PathLike[str], repo: str | os.PathLike[str], reference: str | None = None,
                *, public_key: str | os.PathLike[str] | None = None, store: Store | str | None = None) -> list[str]:
    """Write the repository's files (no commit): every site at the digest it is pinned to, and sites never
    rendered at ``reference`` when given. Deterministic. Returns the files that changed."""
    store = open_store(store)
    sites = load_sites(sites_file)
    folder = Path(repo)
    if not (folder / ".git").exists():
        folder.mkdir(parents=True, exist_ok=True)
        gitops.git(folder, "init", "-q", "-b", "main")
    releases = _pinned_releases(store, sites, folder)
    if reference is not None:
        fresh = release_of(store, resolve(reference, sites, store))
        releases = {s.name: releases.get(s.name, fresh) for s in sites.sites}
    if not releases:
        raise DeployError("no site is pinned yet: give the digest to start from (`--digest REGISTRY/REPO@sha256:...`)")
    return gitops.write(folder, render(sites, releases, _key_text(public_key)))


def _key_text(public_key: str | os.PathLike[str] | None) -> str | None:
    if public_key is None:
        return None
    try:
        return Path(public_key).read_text()
    except OSError:
        raise DeployError(f"public key not found: {public_key}") from None


# -- promote and roll back ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class Promotion:
    """A promotion or rollback: the wave, what each site moves from and to, the gate, the commit."""

    action: str
    model: str
    wave: int
    digest: str
    sites: dict[str, dict[str, str | None]]
    gate: list[GateCheck]
    commit: str | None
    seconds: float

    @property
    def passed(self) -> bool:
        return self.commit is not None

    def summary(self) -> str:
        if not self.passed:
            failed = "; ".join(f"{c.name}: {c.message}" for c in self.gate if not c.passed)
            return f"{self.action} of {self.model} to wave {self.wave} refused, nothing committed: {failed}"
        moves = ", ".join(f"{s} {(v['from'] or 'new')[:19]} -> {v['to'][:19]}" for s, v in self.sites.items())
        return f"{self.action}: wave {self.wave} of {self.model} ({moves}), commit {self.commit[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def _repr_html_(self) -> str:
        rows = [(c.name, "pass" if c.passed else "fail", c.message) for c in self.gate]
        return f"<div><p>{escape(self.summary())}</p>{html.table(['gate', 'verdict', 'message'], rows)}</div>"


HealthSource = Callable[[Site, Release], tuple[bool, str]]


def endpoint_health(site: Site, release: Release) -> tuple[bool, str]:
    """A site is healthy on a release when its endpoint answers ready and serves the release's model bytes."""
    if not site.endpoint:
        return False, f"site {site.name} has no endpoint in sites.yaml to ask"
    base = site.endpoint.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=3) as answer:
            if answer.status != 200:
                return False, f"{base} is not ready (HTTP {answer.status})"
        with urllib.request.urlopen(f"{base}/v2/models/{release.name}", timeout=3) as answer:
            meta = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"{base} does not answer ({getattr(exc, 'reason', exc)})"
    served = (meta.get("parameters") or {}).get("sha256")
    if served != release.sha256:
        return False, f"{base} serves model sha256 {str(served)[:12]}..., not {release.sha256[:12]}..."
    return True, f"{base} ready, serving {release.model}"


def status_file_health(path: str | os.PathLike[str]) -> HealthSource:
    """Health from a file the sites report into: ``{site: {digest: sha256:..., ready: true}}`` (YAML or JSON)."""

    def health(site: Site, release: Release) -> tuple[bool, str]:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            return False, f"status file {path} does not read: {exc}"
        entry = data.get(site.name) or {}
        if entry.get("digest") != release.digest:
            return False, f"{path} says {site.name} runs {str(entry.get('digest'))[:19]}, not {release.digest[:19]}"
        if not entry.get("ready"):
            return False, f"{path} says {site.name} is not ready"
        return True, f"{path}: {site.name} ready on {release.digest[:19]}"

    return health


def promote(reference: str, sites_file: str | os.PathLike[str], repo: str | os.PathLike[str], wave: int, *,
            key: str | os.PathLike[str] | None = None, allow_unsigned: bool = False,
            health: HealthSource = endpoint_health, store: Store | str | None = None) -> Promotion:
    """Move wave ``wave`` of ``sites_file`` to ``REGISTRY/REPOSITORY@sha256:...`` with one commit in ``repo``,
    when the gate passes: a passing image test of every architecture within each device's RAM, the signature and
    the SBOM and image-test attestations by ``key`` (a public key; ``allow_unsigned`` skips this, recorded), and
    every site of the previous wave healthy on this digest. A refused promotion commits nothing."""
    start = time.perf_counter()
    store = open_store(store)
    sites = load_sites(sites_file)
    release = release_of(store, resolve(reference, sites, store))
    if release.repository != sites.hub:
        raise DeployError(f"{reference} is not in the hub repository of {sites.path} ({sites.hub})")
    folder = gitops.open_repo(repo)
    targets = sites.wave(wave)
    pinned = gitops.pins(folder, sites)
    gate = _gate(store, sites, release, wave, targets, pinned, key, allow_unsigned, health)
    moves = {s.name: {"from": pinned.get(s.name), "to": release.digest} for s in targets}
    if not all(c.passed for c in gate):
        return Promotion("promote", release.model, wave, release.digest, moves, gate, None,
                         round(time.perf_counter() - start, 3))
    _mirror(sites.hub, release, targets)
    releases = _pinned_releases(store, sites, folder)
    releases.update({s.name: release for s in targets})
    gitops.write(folder, render(sites, releases, _key_text(key) if key else None))
    gitops.record(folder, {"action": "promote", "model": release.model, "sha256": release.sha256,
                           "digest": release.digest, "wave": wave, "sites": moves, "platforms": release.platforms,
                           "signed": not allow_unsigned, **_evidence(store, release),
                           "gate": [asdict(c) for c in gate]})
    commit = gitops.commit(folder, f"edgebench: promote {release.model} {release.digest[:19]} to wave {wave} "
                                   f"({', '.join(moves)})")
    return Promotion("promote", release.model, wave, release.digest, moves, gate, commit,
                     round(time.perf_counter() - start, 3))


def rollback(sites_file: str | os.PathLike[str], repo: str | os.PathLike[str], wave: int, *,
             key: str | os.PathLike[str] | None = None, store: Store | str | None = None) -> Promotion:
    """A new commit that puts wave ``wave``'s sites back on the digest they ran before their last promotion."""
    start = time.perf_counter()
    store = open_store(store)
    sites = load_sites(sites_file)
    folder = gitops.open_repo(repo)
    targets = sites.wave(wave)
    pinned = gitops.pins(folder, sites)
    history = [r for r in gitops.releases(folder) if r.get("action") == "promote"]
    moves: dict[str, dict[str, str | None]] = {}
    for site in targets:
        last = next((r for r in reversed(history) if site.name in r.get("sites", {})
                     and r["sites"][site.name]["to"] == pinned.get(site.name)), None)
        previous = last["sites"][site.name]["from"] if last else None
        if not previous:
            raise DeployError(f"site {site.name!r} has no previous release to roll back to (it runs its first "
                              f"promoted digest {str(pinned.get(site.name))[:19]}): nothing committed",
                              site=site.name)
        moves[site.name] = {"from": pinned.get(site.name), "to": previous}
    releases = _pinned_releases(store, sites, folder)
    for name, move in moves.items():
        releases[name] = release_of(store, f"{sites.hub}@{move['to']}")
    model = releases[targets[0].name].model
    gitops.write(folder, render(sites, releases, _key_text(key) if key else None))
    gitops.record(folder, {"action": "rollback", "model": model, "wave": wave, "sites": moves})
    commit = gitops.commit(folder, f"edgebench: roll back wave {wave} ({', '.join(moves)})")
    return Promotion("rollback", model, wave, str(moves[targets[0].name]["to"]), moves, [], commit,
                     round(time.perf_counter() - start, 3))


def _gate(store: Store, sites: Sites, release: Release, wave: int, targets: list[Site], pinned: dict[str, str],
          key: Any, allow_unsigned: bool, health: HealthSource) -> list[GateCheck]:
    from ..publish.signing import verify
    from ..state import belongs

    checks = []
    card = store.get(release.model)
    tests = [r.outputs or {} for r in store.runs(card.name, step="test", limit=2000)
             if r.status == "passed" and belongs(r, card)]
    image_ids = _image_ids(store, release)
    pairs = {(s.arch, s.profile.name): s.profile for s in targets}
    for (arch, _), profile in sorted(pairs.items()):
        usable = profile.usable_ram_mb
        fits = [t for t in tests if t.get("image_id") == image_ids.get(arch) and _mb(t) <= usable]
        name = f"image test linux/{arch} within {profile.name}"
        if arch not in release.platforms:
            checks.append(GateCheck(name, False, f"the digest holds no linux/{arch} image"))
        elif not fits:
            checks.append(GateCheck(name, False, f"no passing image test of the linux/{arch} image within "
                                                 f"{profile.name}'s {usable:.0f} MB: run `edgebench test-image IMAGE "
                                                 f"--memory {int(usable)}m`"))
        else:
            checks.append(GateCheck(name, True, f"passed under {fits[0].get('limits', {}).get('memory')}"))
    if allow_unsigned:
        checks.append(GateCheck("signed", True, "not checked: allow_unsigned (recorded)"))
    elif key is None:
        checks.append(GateCheck("signed", False, "give the public key (--key cosign.pub): promotion checks the "
                                                 "signature and attestations"))
    else:
        try:
            report = verify(f"{release.repository}@{release.digest}", key, ["sbom", "image-test"],
                            expected_sha256=release.sha256)
            checks.append(GateCheck("signed", report.passed, report.summary()))
        except EdgebenchError as exc:
            checks.append(GateCheck("signed", False, exc.message))
    if wave > 0:
        for site in sites.wave(wave - 1):
            if pinned.get(site.name) != release.digest:
                checks.append(GateCheck(f"wave {wave - 1} {site.name}", False,
                                        f"runs {str(pinned.get(site.name))[:19]}: promote wave {wave - 1} first"))
                continue
            ok, why = health(site, release)
            checks.append(GateCheck(f"wave {wave - 1} {site.name}", ok, why))
    return checks


def _evidence(store: Store, release: Release) -> dict[str, Any]:
    """What a release record points at: the image test runs per architecture, and the digests of the signature
    and attestation manifests cosign stored next to each image."""
    from ..publish.registry import RegistryClient, find_credentials, parse_destination

    target = parse_destination(release.repository)
    client = RegistryClient(target.registry, find_credentials(target.registry))
    ids = _image_ids(store, release)
    card = store.get(release.model)
    tests = {arch: next((r.id for r in store.runs(card.name, step="test", limit=2000) if r.status == "passed"
                         and (r.outputs or {}).get("image_id") == image_id), None) for arch, image_id in ids.items()}
    signatures: dict[str, dict[str, str]] = {}
    for digest in sorted({release.digest, *release.platforms.values()}):
        found = {}
        for kind in ("sig", "att"):
            try:
                found[kind] = client.manifest(target.repository, f"sha256-{digest.split(':')[1]}.{kind}")[0]
            except EdgebenchError:
                continue
        if found:
            signatures[digest] = found
    return {"image_tests": tests, "signatures": signatures}


def _mb(test: dict[str, Any]) -> float:
    from ..image.tester import parse_memory

    try:
        return parse_memory(test.get("limits", {}).get("memory", "512m")) / 2**20
    except EdgebenchError:
        return float("inf")


def _image_ids(store: Store, release: Release) -> dict[str, str]:
    publish = next(r for r in store.runs(step="publish", limit=5000)
                   if r.status == "passed" and (r.outputs or {}).get("digest") == release.digest)
    out = publish.outputs or {}
    if out.get("platforms"):
        return {arch: p["image_id"] for arch, p in out["platforms"].items()}
    return {arch: out.get("image_id", "") for arch in release.platforms}


def _mirror(hub: str, release: Release, targets: list[Site]) -> None:
    """Copy the digest, with its signatures and attestations, to each target site's mirror registry.

    Each platform's image goes first, then the index: cosign copies an index and the images it names at the same
    time, and a registry refuses an index whose images it does not hold yet (MANIFEST_BLOB_UNKNOWN), so copying the
    index alone fails now and then."""
    from ..publish.signing import Cosign

    mirrors = sorted({s.mirror for s in targets if s.mirror and not s.disconnected})
    digests = [*sorted(set(release.platforms.values()) - {release.digest}), release.digest]
    if mirrors:
        cosign = Cosign()
        for mirror in mirrors:
            for digest in digests:
                cosign("copy", "--force", f"{hub}@{digest}", mirror,
                       what=f"copying {digest[:19]} to the mirror {mirror}")


# -- disconnected sites and status --------------------------------------------------------------------------------


def bundle(site_name: str, sites_file: str | os.PathLike[str], repo: str | os.PathLike[str],
           out: str | os.PathLike[str], *, store: Store | str | None = None) -> dict[str, Any]:
    """One archive for a disconnected site: the image(s) its files pin, their signatures and attestations (as
    ``cosign save`` keeps them), and the site's rendered files under ``manifests/``. Load it at the site with
    ``edgebench load FILE --verify cosign.pub``: nothing is loaded unless it verifies."""
    from ..publish.archive import export_signed_archive

    store = open_store(store)
    sites = load_sites(sites_file)
    site = sites.site(site_name)
    folder = Path(repo)
    digest = gitops.pins(folder, sites).get(site.name)
    if digest is None:
        raise DeployError(f"site {site.name!r} is not pinned to any digest yet: promote its wave first")
    release = release_of(store, f"{sites.hub}@{digest}")
    files = {}
    for top in ("base", f"sites/{site.name}", f"tests/{site.name}", "policy"):
        for path in sorted((folder / top).rglob("*")) if (folder / top).is_dir() else []:
            if path.is_file():
                files[f"manifests/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
    platforms = release.platforms if len(release.platforms) > 1 else {}
    image_size = 0
    written, size = export_signed_archive(f"{sites.hub}@{digest}", out, platforms, extra=files)
    for blob in release.platforms.values():
        image_size += _image_bytes(sites.hub, blob)
    return {"site": site.name, "digest": written, "archive": str(Path(out).resolve()), "bytes": size,
            "image_bytes": image_size, "manifests": sorted(files)}


def _image_bytes(repository: str, digest: str) -> int:
    from ..publish.registry import RegistryClient, find_credentials, parse_destination

    target = parse_destination(repository)
    _, manifest = RegistryClient(target.registry, find_credentials(target.registry)).manifest(
        target.repository, digest)
    return int(manifest["config"]["size"] + sum(layer["size"] for layer in manifest.get("layers", [])))


@dataclass(frozen=True)
class SiteStatus:
    site: str
    wave: int
    target: str
    desired: str | None
    answer: str
    healthy: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def status(sites_file: str | os.PathLike[str], repo: str | os.PathLike[str], *,
           store: Store | str | None = None) -> list[SiteStatus]:
    """Per site: the digest its files pin (desired) and what its endpoint answers, when it has one."""
    store = open_store(store)
    sites = load_sites(sites_file)
    pinned = gitops.pins(Path(repo), sites)
    found = []
    for site in sites.sites:
        desired = pinned.get(site.name)
        if desired is None:
            found.append(SiteStatus(site.name, site.wave, site.target, None, "not promoted yet"))
            continue
        if not site.endpoint:
            found.append(SiteStatus(site.name, site.wave, site.target, desired, "no endpoint to ask"))
            continue
        ok, why = endpoint_health(site, release_of(store, f"{sites.hub}@{desired}"))
        found.append(SiteStatus(site.name, site.wave, site.target, desired, why, ok))
    return found
