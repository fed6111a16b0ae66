"""Move images to air-gapped sites as one tar file that is both an OCI image layout and a ``docker load``
archive, with the image digest preserved.

Layout of the file::

    oci-layout, index.json           OCI image layout (skopeo, podman, containerd, crane read it)
    manifest.json                    docker-archive manifest (docker load reads it)
    blobs/sha256/<digest>            config, uncompressed layers and the OCI manifest, each stored once
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInputError, PublishError
from ..core.images import arch_name, parse_platform
from ..engine import docker_client
from ..fsutil import atomic_writer
from ..image.builder import image_tag
from ..store import Store, open_store

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class LoadedImage:
    image_id: str
    tags: list[str]
    model: str | None
    platform: str = "linux/amd64"
    others: list[str] = field(default_factory=list)  # platforms the archive also holds, not loaded


def export_archive(images: Any, path: str | os.PathLike[str], *, store: Store | None = None, client: Any = None,
                   forced: bool = False, test_run: Any = None) -> Any:
    """Write ``images`` (a docker SDK image, or one model's images for several architectures) to ``path``;
    returns a PublishResult whose digest is the OCI manifest's (one image) or the image index's (several), and
    whose ``image_id`` is the config digest ``docker load`` gives back (one image)."""
    from . import PublishResult

    images = images if isinstance(images, list) else [images]
    store = open_store(store)
    docker = docker_client(client)
    target = Path(path).resolve()
    if not target.parent.is_dir():
        raise InvalidInputError(f"folder {target.parent} does not exist: create it or choose another path")
    model = images[0].labels.get("org.edgebench.model", "")
    name, _, version = model.partition(":")
    run_id = store.start_run("publish", name, int(version), {"destination": f"oci-archive:{target}",
                                                             "force": forced, "test_run": test_run})
    start = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            saved = []
            for image in images:
                file = stack.enter_context(tempfile.TemporaryFile(dir=target.parent))
                current = docker.images.get(image.id)
                for chunk in current.save(named=_archive_tag(current)):
                    file.write(chunk)
                file.seek(0)
                saved.append(stack.enter_context(tarfile.open(fileobj=file, mode="r:")))
            digest, platforms = _rewrite(saved, target, [i.id for i in images])
        one = len(images) == 1
        result = PublishResult(
            image=", ".join(i.tags[0] if i.tags else i.id for i in images), image_id=images[0].id if one else "",
            model=model, destination=f"oci-archive:{target}", digest=digest, tags=[t for i in images for t in i.tags],
            verified=True, forced=forced, test_run=test_run if one else None,
            pushed_layers=sum(len(i.attrs["RootFS"]["Layers"]) for i in images), reused_layers=0,
            pushed_bytes=target.stat().st_size, seconds=round(time.perf_counter() - start, 3),
            platforms={} if one else platforms,
        )
    except BaseException as exc:
        store.finish_run(run_id, "failed", {"error": str(exc)})
        raise
    store.finish_run(run_id, "passed", result.to_dict())
    return result


def _rewrite(saved: list[tarfile.TarFile], target: Path, image_ids: list[str]
             ) -> tuple[str, dict[str, dict[str, Any]]]:
    """Turn ``docker save`` archives (one per image) into the dual layout at ``target`` (atomically). Returns the
    digest of the manifest (one image) or of the image index naming every platform (several), and the platforms."""
    with atomic_writer(target) as out, tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        written: set[str] = set()
        descriptors, platforms, load = [], {}, []
        for source, image_id in zip(saved, image_ids, strict=True):
            (entry,) = json.load(source.extractfile("manifest.json"))  # type: ignore[arg-type]
            config = source.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
            if "sha256:" + hashlib.sha256(config).hexdigest() != image_id:
                raise PublishError(f"the engine saved config sha256:{hashlib.sha256(config).hexdigest()}, not "
                                   f"image {image_id}")
            descriptor, layers = _image_blobs(source, tar, entry, config, image_id, written)
            info = json.loads(config)
            platform = {"architecture": info.get("architecture", "amd64"), "os": info.get("os", "linux")}
            descriptors.append({**descriptor, "platform": platform})
            platforms[platform["architecture"]] = {"digest": descriptor["digest"], "image_id": image_id}
            load.append({"Config": _blob(image_id), "RepoTags": entry.get("RepoTags") or [], "Layers": layers})
        tags = [t for e in load for t in e["RepoTags"]]
        if len(descriptors) == 1:
            top = descriptors[0]
        else:  # one index naming every platform, so the archive has one digest like a registry tag
            index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors},
                               separators=(",", ":")).encode()
            top = {"mediaType": OCI_INDEX, "digest": "sha256:" + hashlib.sha256(index).hexdigest(),
                   "size": len(index)}
            _add(tar, _blob(top["digest"]), index)
        if len(descriptors) > 1:  # edgebench/NAME:1-amd64 and edgebench/NAME:1-arm64 are edgebench/NAME:1
            tags = sorted({t.removesuffix(f"-{a}") for t in tags for a in platforms if t.endswith(f"-{a}")})
        top = {k: v for k, v in top.items() if k != "platform"}
        refs = [{**top, "annotations": {"io.containerd.image.name": t,
                                        "org.opencontainers.image.ref.name": t.rsplit(":", 1)[-1]}}
                for t in tags] or [top]
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                            "manifests": refs}).encode())
        _add(tar, "manifest.json", json.dumps(load).encode())
    return top["digest"], platforms


def _image_blobs(source: tarfile.TarFile, tar: tarfile.TarFile, entry: dict[str, Any], config: bytes,
                 image_id: str, written: set[str]) -> tuple[dict[str, Any], list[str]]:
    """Write one image's config, layers (each once per archive, checked against its diff id) and OCI manifest;
    returns the manifest's descriptor and the layer paths for ``docker load``."""
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    if image_id not in written:
        _add(tar, _blob(image_id), config)
        written.add(image_id)
    layers = []
    for member_name, diff_id in zip(entry["Layers"], diff_ids, strict=True):
        member = source.getmember(member_name)
        if diff_id not in written:
            _copy_verified(source, member, tar, diff_id)
            written.add(diff_id)
        layers.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": member.size})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": len(config)},
        "layers": layers,
    }, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    _add(tar, _blob(digest), manifest)
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}, [_blob(d) for d in diff_ids]


def _archive_tag(image: Any) -> str | bool:
    """The one name an image has in the archive: edgebench's own tag (``edgebench/NAME:VERSION-ARCH``) when the
    image still has it, else its first tag. A pull from a registry adds tags to the same image; naming by the first
    tag let such a tag into the archive beside edgebench's, and skopeo and podman refuse a layout with two names
    without being told which one to read."""
    name, _, version = (image.labels or {}).get("org.edgebench.model", "").partition(":")
    own = image_tag(name, int(version), arch_name(image.attrs.get("Architecture", ""))) if version.isdigit() else ""
    return own if own in image.tags else (image.tags[0] if image.tags else False)


def _blob(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _copy_verified(source: tarfile.TarFile, member: tarfile.TarInfo, tar: tarfile.TarFile, diff_id: str) -> None:
    """Copy one layer into its blob path, checking that its bytes hash to the diff id the config names."""
    digest = hashlib.sha256()
    reader = source.extractfile(member)
    assert reader is not None

    class Hashing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            data = reader.read(len(buffer))
            digest.update(data)
            buffer[: len(data)] = data
            return len(data)

    info = tarfile.TarInfo(_blob(diff_id))
    info.size = member.size
    info.mode = 0o644
    tar.addfile(info, io.BufferedReader(Hashing(), 1 << 20))
    if "sha256:" + digest.hexdigest() != diff_id:
        raise PublishError(f"layer {member.name} does not hash to {diff_id}: the saved image is damaged")


def load_archive(path: str | os.PathLike[str], *, platform: str | None = None, client: Any = None) -> LoadedImage:
    """Load an archive written by :func:`export_archive` (or ``docker save``) and check the image digest.

    An archive of several architectures loads the engine's own (or ``platform``) only."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"archive not found: {file}", path=str(file))
    chosen = parse_platform(platform).split("/")[1] if platform else None
    try:
        with tarfile.open(file, mode="r:") as tar:
            entries = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            found = {}
            for entry in entries:
                config = tar.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
                found[json.loads(config).get("architecture", "amd64")] = (
                    entry, "sha256:" + hashlib.sha256(config).hexdigest())
    except (tarfile.TarError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise PublishError(f"{file} is not an image archive (no readable manifest.json): {exc}",
                           path=str(file)) from exc
    docker = docker_client(client)
    wanted = chosen or arch_name(docker.info().get("Architecture", ""))
    if wanted not in found:
        raise PublishError(f"{file} holds {', '.join(f'linux/{a}' for a in sorted(found))}, not linux/{wanted}: "
                           "choose one with --platform", path=str(file))
    entry, expected = found[wanted]
    with tempfile.TemporaryFile() as one:  # docker load takes every image of an archive: give it only this one
        with tarfile.open(file, mode="r:") as tar, tarfile.open(fileobj=one, mode="w:") as out:
            _add(out, "manifest.json", json.dumps([entry]).encode())
            for name in [entry["Config"], *entry["Layers"]]:
                member = tar.getmember(name)
                out.addfile(member, tar.extractfile(member))
        one.seek(0)
        try:
            images = docker.images.load(one)
        except Exception as exc:
            raise PublishError(f"the engine could not load {file}: {exc}", path=str(file)) from exc
    loaded = next((i for i in images if i.id == expected), None)
    if loaded is None:
        raise PublishError(f"loading {file} gave {[i.id for i in images]}, not the archived image {expected}",
                           path=str(file))
    return LoadedImage(loaded.id, list(loaded.tags), (loaded.labels or {}).get("org.edgebench.model"),
                       f"linux/{wanted}", [f"linux/{a}" for a in sorted(found) if a != wanted])


# -- signed archives: what cosign saved, signatures and attestations included -------------------------------------


def export_signed_archive(reference: str, path: str | os.PathLike[str], platforms: dict[str, str], *,
                          runner: Any = None, extra: dict[str, bytes] | None = None) -> tuple[str, int]:
    """Write the published, signed ``REGISTRY/REPO@sha256:...`` to ``path`` with its signatures and attestations:
    the OCI layout ``cosign save`` writes at the root (and, for an index, one per platform under
    ``platforms/linux-ARCH/``, since cosign saves an index's own signatures only), plus a ``docker load`` manifest
    of every platform's image. Blobs are stored once (hard links in the tar); ``extra`` files (path -> bytes) go in
    too. Returns (digest, bytes)."""
    from .signing import Cosign, split_digest_ref

    repo, digest = split_digest_ref(reference)
    target = Path(path).resolve()
    if not target.parent.is_dir():
        raise InvalidInputError(f"folder {target.parent} does not exist: create it or choose another path")
    cosign = Cosign(runner) if runner else Cosign()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        root = Path(tmp) / "root"
        cosign("save", "--dir", str(root), reference, what=f"saving {reference} with its signatures")
        layouts = {"": root}
        for arch, child in sorted(platforms.items()):
            folder = Path(tmp) / f"linux-{arch}"
            cosign("save", "--dir", str(folder), f"{repo}@{child}", what=f"saving linux/{arch} of {reference}")
            layouts[f"platforms/linux-{arch}/"] = folder
        images = list(platforms.values()) or [digest]
        load = [_load_entry(root, child) for child in images]
        with atomic_writer(target) as out, tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            first: dict[str, str] = {}  # blob digest -> the tar path that holds its bytes
            for prefix, folder in layouts.items():
                for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                    name = prefix + file.relative_to(folder).as_posix()
                    key = file.name if file.parent.name == "sha256" else name
                    if key in first:
                        info = tarfile.TarInfo(name)
                        info.type, info.linkname, info.mode = tarfile.LNKTYPE, first[key], 0o644
                        tar.addfile(info)
                        continue
                    first[key] = name
                    info = tar.gettarinfo(file, arcname=name)
                    info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
                    with file.open("rb") as data:
                        tar.addfile(info, data)
            _add(tar, "manifest.json", json.dumps(load).encode())
            for name, data in sorted((extra or {}).items()):  # e.g. a site's rendered manifests
                _add(tar, name, data)
    return digest, target.stat().st_size


def _load_entry(root: Path, manifest_digest: str) -> dict[str, Any]:
    manifest = json.loads((root / _blob(manifest_digest)).read_bytes())
    return {"Config": _blob(manifest["config"]["digest"]), "RepoTags": [],
            "Layers": [_blob(layer["digest"]) for layer in manifest["layers"]]}


@dataclass(frozen=True)
class VerifiedLoad:
    """A signed archive verified and loaded into a site's registry or engine."""

    archive: str
    digest: str
    verification: Any
    destination: str
    loaded: LoadedImage | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"archive": self.archive, "digest": self.digest, "verification": self.verification.to_dict(),
                "destination": self.destination, "loaded": self.loaded.__dict__ if self.loaded else None}


def load_verified(path: str | os.PathLike[str], key: str | os.PathLike[str], *, to: str | None = None,
                  require: tuple[str, ...] = ("sbom", "image-test"), platform: str | None = None,
                  client: Any = None) -> VerifiedLoad:
    """Verify a signed archive against ``key`` (a cosign public key) before anything reaches the site: the
    signature and the ``require``d attestations of every platform. Then load it into the registry ``to``
    (``REGISTRY/REPOSITORY``, signatures included, verified again there) or into the engine. A failed check
    raises :class:`SigningError` and loads nothing."""
    from ..core.errors import SigningError
    from .registry import parse_destination
    from .signing import Cosign, verify

    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"archive not found: {file}", path=str(file))
    if to is not None:
        parse_destination(to)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with tarfile.open(file, mode="r:") as tar:
                tar.extractall(tmp, filter="data")
            index = json.loads((Path(tmp) / "index.json").read_text())
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise PublishError(f"{file} is not a signed image archive (no readable OCI layout): {exc}",
                               path=str(file)) from None
        top = next((m for m in index["manifests"] if m.get("annotations", {}).get("kind", "").endswith(
            ("/image", "/imageIndex"))), None)
        if top is None:
            raise SigningError(f"{file} carries no signatures (it was not written with --sign): refusing it",
                               path=str(file))
        digest = top["digest"]
        report = verify(f"archive/{file.name}@{digest}", key, require, local=tmp)
        if not report.passed:
            raise SigningError(f"{file} failed verification, nothing was loaded: {report.summary()}",
                               path=str(file), verification=report.to_dict())
        if to is not None:
            cosign = Cosign()
            for folder in sorted((Path(tmp) / "platforms").glob("linux-*")):  # the images before their index
                cosign("load", "--dir", str(folder), to, what=f"loading {folder.name} into {to}")
            cosign("load", "--dir", tmp, to, what=f"loading {file.name} into {to}")
            again = verify(f"{to}@{digest}", key, require)
            if not again.passed:
                raise SigningError(f"{to}@{digest} does not verify after the load: {again.summary()}",
                                   registry=to)
            return VerifiedLoad(str(file), digest, again, f"{to}@{digest}")
    loaded = load_archive(file, platform=platform, client=client)
    return VerifiedLoad(str(file), digest, report, "engine", loaded)
