"""Move images to air-gapped sites as one tar file that is both an OCI image layout and a ``docker load``
archive, with the image digest preserved.

Layout of the file::

    oci-layout, index.json           OCI image layout (skopeo, podman, containerd, crane read it)
    manifest.json                    docker-archive manifest (docker load reads it)
    blobs/sha256/<digest>            config, uncompressed layers and the OCI manifest, each stored once
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInputError, PublishError
from ..engine import docker_client
from ..fsutil import atomic_writer
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


def export_archive(image: Any, path: str | os.PathLike[str], *, store: Store | None = None, client: Any = None,
                   forced: bool = False, test_run: int | None = None) -> Any:
    """Write ``image`` (a docker SDK image) to ``path``; returns a PublishResult whose digest is the OCI
    manifest's and whose ``image_id`` is the config digest ``docker load`` will give back."""
    from . import PublishResult

    store = open_store(store)
    docker = docker_client(client)
    target = Path(path).resolve()
    if not target.parent.is_dir():
        raise InvalidInputError(f"folder {target.parent} does not exist: create it or choose another path")
    model = image.labels.get("org.edgebench.model", "")
    name, _, version = model.partition(":")
    run_id = store.start_run("publish", name, int(version), {"destination": f"oci-archive:{target}",
                                                             "force": forced, "test_run": test_run})
    start = time.perf_counter()
    try:
        with tempfile.TemporaryFile(dir=target.parent) as saved:
            for chunk in docker.images.get(image.id).save(named=True):
                saved.write(chunk)
            saved.seek(0)
            digest = _rewrite(saved, target, image.id)
        result = PublishResult(
            image=image.tags[0] if image.tags else image.id, image_id=image.id, model=model,
            destination=f"oci-archive:{target}", digest=digest, tags=list(image.tags), verified=True,
            forced=forced, test_run=test_run, pushed_layers=len(image.attrs["RootFS"]["Layers"]), reused_layers=0,
            pushed_bytes=target.stat().st_size, seconds=round(time.perf_counter() - start, 3),
        )
    except BaseException as exc:
        store.finish_run(run_id, "failed", {"error": str(exc)})
        raise
    store.finish_run(run_id, "passed", result.to_dict())
    return result


def _rewrite(saved: Any, target: Path, image_id: str) -> str:
    """Turn a ``docker save`` stream into the dual layout at ``target`` (atomically); return the manifest digest."""
    with tarfile.open(fileobj=saved, mode="r:") as source:
        (entry,) = json.load(source.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = source.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        if config_digest != image_id:
            raise PublishError(f"the engine saved config {config_digest}, not image {image_id}")
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        with atomic_writer(target) as out, tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            _add(tar, _blob(config_digest), config)
            layers, written = [], set()
            for member_name, diff_id in zip(entry["Layers"], diff_ids, strict=True):
                member = source.getmember(member_name)
                if diff_id not in written:
                    _copy_verified(source, member, tar, diff_id)
                    written.add(diff_id)
                layers.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": member.size})
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": layers,
            }, separators=(",", ":")).encode()
            manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            _add(tar, _blob(manifest_digest), manifest)
            tags = entry.get("RepoTags") or []
            descriptor = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest)}
            refs = [{**descriptor, "annotations": {"io.containerd.image.name": t,
                                                   "org.opencontainers.image.ref.name": t.rsplit(":", 1)[-1]}}
                    for t in tags] or [descriptor]
            _add(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                "manifests": refs}).encode())
            _add(tar, "manifest.json", json.dumps([{
                "Config": _blob(config_digest), "RepoTags": tags, "Layers": [_blob(d) for d in diff_ids],
            }]).encode())
    return manifest_digest


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


def load_archive(path: str | os.PathLike[str], *, client: Any = None) -> LoadedImage:
    """Load an archive written by :func:`export_archive` (or ``docker save``) and check the image digest."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"archive not found: {file}", path=str(file))
    try:
        with tarfile.open(file, mode="r:") as tar:
            (entry,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            expected = "sha256:" + hashlib.sha256(tar.extractfile(entry["Config"]).read()).hexdigest()  # type: ignore[union-attr]
    except (tarfile.TarError, KeyError, ValueError, TypeError) as exc:
        raise PublishError(f"{file} is not an image archive (no readable manifest.json): {exc}",
                           path=str(file)) from exc
    docker = docker_client(client)
    with file.open("rb") as data:
        try:
            images = docker.images.load(data)
        except Exception as exc:
            raise PublishError(f"the engine could not load {file}: {exc}", path=str(file)) from exc
    loaded = next((i for i in images if i.id == expected), None)
    if loaded is None:
        raise PublishError(f"loading {file} gave {[i.id for i in images]}, not the archived image {expected}",
                           path=str(file))
    return LoadedImage(loaded.id, list(loaded.tags), (loaded.labels or {}).get("org.edgebench.model"))
