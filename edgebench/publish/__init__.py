"""Publish tested images: push by digest through the Docker Engine, read the manifest back over the
distribution API, optionally pull back and re-test; or write an archive for an air-gapped site.

Credentials come from ``credentials=``, from ``EDGEBENCH_REGISTRY_USERNAME`` / ``EDGEBENCH_REGISTRY_PASSWORD``,
or from the user's docker config (``auths`` and credential helpers). They are handed to the engine and to the
registry client only, never written to the store, logs or reports.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInputError, PublishError, SigningError
from ..core.images import ImageRef, ImageTestReport
from ..engine import docker_client
from ..progress import Progress, auto
from ..store import Store, open_store
from .registry import (
    ARCHIVE_PREFIX,
    OCI_INDEX,
    Credentials,
    Destination,
    RegistryClient,
    check_tags,
    find_credentials,
    parse_destination,
)


@dataclass(frozen=True)
class PublishResult:
    """A published image: where, under which tags, by which digest, and what allowed it."""

    image: str
    image_id: str
    model: str
    destination: str
    digest: str
    tags: list[str]
    verified: bool
    forced: bool
    test_run: int | None
    pushed_layers: int
    reused_layers: int
    pushed_bytes: int
    seconds: float
    pull_back: ImageTestReport | None = None
    #: for a multi-arch publish, per architecture: the image's own manifest digest, image id and test run
    platforms: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: signed with cosign after the push, and what was attested per image digest
    signed: bool = False
    attestations: dict[str, list[str]] = field(default_factory=dict)

    @property
    def references(self) -> list[str]:
        if self.destination.startswith(ARCHIVE_PREFIX):
            return [f"{self.destination} (manifest {self.digest}, image {self.image_id})"]
        return [f"{self.destination}:{t}" for t in self.tags] + [f"{self.destination}@{self.digest}"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pull_back"] = self.pull_back.to_dict() if self.pull_back else None
        data["references"] = self.references
        return data

    def _repr_html_(self) -> str:
        items = "".join(f"<li><code>{escape(r)}</code></li>" for r in self.references)
        note = " (forced past the test gate)" if self.forced else ""
        if self.signed:
            note += ", signed and verified (" + ", ".join(sorted({k for v in self.attestations.values() for k in v})) \
                + " attested)"
        if self.platforms:
            items += "".join(f"<li>{escape(arch)}: <code>{escape(p['digest'])}</code></li>"
                             for arch, p in self.platforms.items())
        return (f"<div><p>Published {escape(self.model)}{note} in {self.seconds:.1f} s, "
                f"{self.pushed_layers} layers pushed ({self.pushed_bytes / 2**20:.1f} MiB), "
                f"{self.reused_layers} already there; manifest read back: "
                f"{'verified' if self.verified else 'not verified'}</p><ul>{items}</ul></div>")


def publish(
    image: ImageRef | str | Sequence[ImageRef | str],
    destination: str,
    tags: Sequence[str] = (),
    *,
    force: bool = False,
    pull_back: bool = False,
    credentials: Credentials | None = None,
    sign: str | os.PathLike[str] | None = None,
    password: str | None = None,
    via: str | None = None,
    store: Store | str | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> PublishResult:
    """Push a tested image to ``REGISTRY/REPOSITORY`` under ``tags`` (default: the model version), or write it
    to ``oci-archive:FILE.tar``.

    ``sign="keys/cosign.key"`` signs the pushed digest with cosign after the push and attests its SBOM, image
    test, parity and bench (see :mod:`edgebench.publish.signing`); the key's password comes from ``password`` or
    ``COSIGN_PASSWORD``. A signing failure fails the publish: nothing is recorded as signed. cosign keeps
    signatures in registries, so a signed archive is published to ``via`` (``REGISTRY/REPOSITORY``, the hub the
    sites would otherwise pull from), signed there, and saved with its signatures and attestations.

    Only an image whose last test passed is published unless ``force=True`` (recorded). After the push the
    manifest is read back for every tag and must carry the digest that was pushed, and its config must be the
    tested image. ``pull_back=True`` pulls by digest and runs the image test on what came back.

    Several images of one model (one per architecture, e.g. ``[".../digits-rf:1-amd64", ".../digits-rf:1-arm64"]``)
    are published as one multi-arch image: each is pushed by digest (under ``TAG-ARCH``), then an OCI image index
    naming every platform goes under each tag, and is read back. The test gate applies to each architecture. No
    tag is written until every architecture is pushed and verified.
    """
    store = open_store(store)
    docker = docker_client(client)
    images = [image] if isinstance(image, ImageRef | str) else list(image)
    if not images:
        raise InvalidInputError("give at least one image to publish")
    if sign is not None:
        from .signing import check_private_key

        check_private_key(sign)  # before anything is pushed
        if destination.startswith(ARCHIVE_PREFIX):
            return _signed_archive(images, destination[len(ARCHIVE_PREFIX):], tags, force, credentials, sign,
                                   password, via, store, docker, progress)
    if len(images) > 1:
        return _publish_index(images, destination, tags, force, credentials, store, docker, progress, sign,
                              password)
    found = _image(docker, _reference(images[0]))
    model = _model(found)
    name, _, version = model.partition(":")
    test_run = _test_gate(store, found, name, force)
    if destination.startswith(ARCHIVE_PREFIX):
        from .archive import export_archive

        return export_archive(found, destination[len(ARCHIVE_PREFIX):], store=store, client=docker,
                              forced=force, test_run=test_run)
    target = parse_destination(destination)
    tags = check_tags(list(tags) or [version])
    progress = progress or auto("publish")
    creds = find_credentials(target.registry, credentials)
    registry = RegistryClient(target.registry, creds)
    registry.ping()
    run_id = store.start_run("publish", name, int(version),
                             {"destination": target.name, "tags": tags, "force": force, "test_run": test_run})
    start = time.perf_counter()
    try:
        digest, layers = _push(docker, found, target, tags, creds, progress)
        verified = _verify(registry, target, tags, digest, found.id)
        pulled = None
        if pull_back:
            from ..image.tester import test_image

            progress.step(1, 1, f"pulling {target.name}@{digest} back")
            again = docker.images.pull(f"{target.name}@{digest}",
                                       auth_config=creds.auth_config() if creds else None)
            if again.id != found.id:
                raise PublishError(f"pulled {target.name}@{digest} back as {again.id}, not the tested {found.id}")
            pulled = test_image(f"{target.name}@{digest}", store=store, client=docker, progress=progress)
            if not pulled.passed:
                raise PublishError(f"the image pulled back from {target.registry} failed its test: "
                                   f"{pulled.summary()}", registry=target.registry)
        attested = _sign(sign, password, target, digest, {digest: found}, store, docker, progress) if sign else {}
        result = PublishResult(
            image=found.tags[0] if found.tags else found.id, image_id=found.id, model=model,
            destination=target.name, digest=digest, tags=tags, verified=verified, forced=force,
            test_run=test_run, pushed_layers=layers["pushed"], reused_layers=layers["reused"],
            pushed_bytes=layers["bytes"], seconds=round(time.perf_counter() - start, 3), pull_back=pulled,
            signed=bool(sign), attestations=attested,
        )
    except BaseException as exc:
        store.finish_run(run_id, "failed", {"error": str(exc)})
        raise
    store.finish_run(run_id, "passed", result.to_dict())
    progress.close()
    return result


def _publish_index(images: list[ImageRef | str], destination: str, tags: Sequence[str], force: bool,
                   credentials: Credentials | None, store: Store, docker: Any, progress: Progress | None,
                   sign: str | os.PathLike[str] | None, password: str | None) -> PublishResult:
    """One model's images for several architectures -> per-arch pushes by digest, then one index per tag."""
    found = {}
    for ref in images:
        image = _image(docker, _reference(ref))
        arch = image.attrs.get("Architecture", "")
        if arch in found:
            raise InvalidInputError(
                f"two images for linux/{arch} ({_reference_of(found[arch])} and {_reference(ref)}): an index has one "
                "image per platform", platform=f"linux/{arch}")
        found[arch] = image
    models = {arch: _model(image) for arch, image in found.items()}
    if len(set(models.values())) > 1:
        listed = ", ".join(f"{m} ({a})" for a, m in sorted(models.items()))
        raise InvalidInputError(f"images of different models in one index: {listed}; an index holds one model "
                                "version built for several architectures")
    model = next(iter(models.values()))
    name, _, version = model.partition(":")
    gates = {}
    for arch, image in sorted(found.items()):
        try:
            gates[arch] = _test_gate(store, image, name, force)
        except PublishError as exc:
            raise PublishError(f"linux/{arch}: {exc.message}; the index would name an untested architecture",
                               image=image.id, platform=f"linux/{arch}") from None
    if destination.startswith(ARCHIVE_PREFIX):
        from .archive import export_archive

        return export_archive(list(found.values()), destination[len(ARCHIVE_PREFIX):], store=store, client=docker,
                              forced=force, test_run=gates)
    target = parse_destination(destination)
    tags = check_tags(list(tags) or [version])
    progress = progress or auto("publish")
    creds = find_credentials(target.registry, credentials)
    registry = RegistryClient(target.registry, creds)
    registry.ping()
    run_id = store.start_run("publish", name, int(version), {
        "destination": target.name, "tags": tags, "force": force, "test_runs": gates,
        "platforms": [f"linux/{a}" for a in sorted(found)]})
    start = time.perf_counter()
    platforms: dict[str, dict[str, Any]] = {}
    totals = {"pushed": 0, "reused": 0, "bytes": 0}
    try:
        entries = []
        for arch, image in sorted(found.items()):
            arch_tag = f"{tags[0]}-{arch}"
            progress.step(len(platforms) + 1, len(found) + 1, f"pushing linux/{arch} as {target.name}:{arch_tag}")
            digest, layers = _push(docker, image, target, [arch_tag], creds, progress)
            _verify(registry, target, [arch_tag], digest, image.id)
            media_type, size = registry.describe(target.repository, digest)
            entries.append({"mediaType": media_type, "digest": digest, "size": size,
                            "platform": {"architecture": arch, "os": image.attrs.get("Os", "linux")}})
            platforms[arch] = {"digest": digest, "image_id": image.id, "tag": arch_tag, "test_run": gates[arch]}
            totals = {k: totals[k] + layers[k] for k in totals}
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                           separators=(",", ":")).encode()
        progress.step(len(found) + 1, len(found) + 1, f"writing the index for {', '.join(sorted(found))} under "
                                                      f"{', '.join(tags)}")
        for tag in tags:
            digest = registry.put_manifest(target.repository, tag, index, OCI_INDEX)
        verified = _verify_index(registry, target, tags, digest, platforms)
        attested = _sign(sign, password, target, digest, {p["digest"]: found[a] for a, p in platforms.items()},
                         store, docker, progress) if sign else {}
        result = PublishResult(
            image=", ".join(_reference_of(found[a]) for a in sorted(found)), image_id="", model=model,
            destination=target.name, digest=digest, tags=tags, verified=verified, forced=force, test_run=None,
            pushed_layers=totals["pushed"], reused_layers=totals["reused"], pushed_bytes=totals["bytes"],
            seconds=round(time.perf_counter() - start, 3), platforms=platforms, signed=bool(sign),
            attestations=attested,
        )
    except BaseException as exc:
        pushed = ", ".join(f"{a} {p['digest']}" for a, p in platforms.items()) or "nothing"
        store.finish_run(run_id, "failed", {"error": str(exc), "platforms": platforms})
        if isinstance(exc, PublishError):
            raise PublishError(f"{exc.message}. Pushed so far: {pushed}; no tag points at an index that names "
                               "them until every architecture is pushed; publishing again completes it",
                               registry=target.registry) from None
        raise
    store.finish_run(run_id, "passed", result.to_dict())
    progress.close()
    return result


def _signed_archive(images: list[ImageRef | str], path: str, tags: Sequence[str], force: bool,
                    credentials: Credentials | None, key: str | os.PathLike[str], password: str | None,
                    via: str | None, store: Store, docker: Any, progress: Progress | None) -> PublishResult:
    """Publish to ``via`` with signatures, then save the signed digest, signatures and all, as the archive."""
    from .archive import export_signed_archive

    if not via:
        raise InvalidInputError(
            "a signed archive needs a registry to sign in (cosign keeps signatures in registries): give "
            "via=REGISTRY/REPOSITORY (--via), e.g. the hub registry; the archive then carries the image, its "
            "signatures and attestations")
    pushed = publish(images if len(images) > 1 else images[0], via, tags, force=force, credentials=credentials,
                     sign=key, password=password, store=store, client=docker, progress=progress)
    name, _, version = pushed.model.partition(":")
    run_id = store.start_run("publish", name, int(version), {"destination": f"{ARCHIVE_PREFIX}{path}",
                                                              "via": f"{pushed.destination}@{pushed.digest}"})
    start = time.perf_counter()
    try:
        digest, size = export_signed_archive(f"{pushed.destination}@{pushed.digest}", path,
                                             {a: p["digest"] for a, p in pushed.platforms.items()})
    except BaseException as exc:
        store.finish_run(run_id, "failed", {"error": str(exc)})
        raise
    result = PublishResult(
        image=pushed.image, image_id=pushed.image_id, model=pushed.model,
        destination=f"{ARCHIVE_PREFIX}{Path(path).resolve()}", digest=digest, tags=pushed.tags, verified=True,
        forced=force, test_run=pushed.test_run, pushed_layers=pushed.pushed_layers, reused_layers=0,
        pushed_bytes=size, seconds=round(pushed.seconds + time.perf_counter() - start, 3), platforms=pushed.platforms,
        signed=True, attestations=pushed.attestations,
    )
    store.finish_run(run_id, "passed", result.to_dict())
    return result


def sign(reference: str, key: str | os.PathLike[str], *, password: str | None = None,
         store: Store | str | None = None, client: Any = None, progress: Progress | None = None
         ) -> dict[str, list[str]]:
    """Sign ``REGISTRY/REPOSITORY@sha256:...`` (an image or a multi-arch index) and attest each image it holds:
    SBOM, image test, parity, bench. The images are found in the engine (pulled when missing); the reports come
    from the store. Returns the attestation kinds per image digest."""
    from .signing import check_private_key, split_digest_ref

    repo, digest = split_digest_ref(reference)
    check_private_key(key)
    store = open_store(store)
    docker = docker_client(client)
    target = parse_destination(repo)
    registry = RegistryClient(target.registry, find_credentials(target.registry))
    _, manifest = registry.manifest(target.repository, digest)
    children = [m["digest"] for m in manifest.get("manifests", [])] or [digest]
    images = {child: _local_or_pulled(docker, f"{repo}@{child}") for child in children}
    return _sign(key, password, target, digest, images, store, docker, progress or auto("sign"))


def _local_or_pulled(docker: Any, reference: str) -> Any:
    try:
        return docker.images.get(reference)
    except Exception:
        return docker.images.pull(reference)


def _sign(key: str | os.PathLike[str], password: str | None, target: Destination, digest: str,
          images: dict[str, Any], store: Store, docker: Any, progress: Progress) -> dict[str, list[str]]:
    """Sign the pushed digest (an index too) and attest each image it holds; a failure says what was pushed."""
    from .signing import predicates_for, public_key_of, sign_and_attest, verify

    progress.step(1, 1, f"signing {target.name}@{digest}")
    attested: dict[str, list[str]] = {}
    try:
        if digest not in images:  # an index: signed itself, each platform's image signed and attested below
            sign_and_attest(f"{target.name}@{digest}", key, {}, password=password)
        for child, image in images.items():
            attested[child] = sign_and_attest(f"{target.name}@{child}", key, predicates_for(store, docker, image),
                                              password=password)
        with tempfile.TemporaryDirectory() as tmp:  # read back from the registry, as a site will
            public = public_key_of(key, Path(tmp) / "cosign.pub", password=password)
            common = set.intersection(*(set(kinds) for kinds in attested.values()))
            report = verify(f"{target.name}@{digest}", public, sorted(common))
        if not report.passed:
            raise SigningError(f"what was just signed does not verify: {report.summary()}")
    except SigningError as exc:
        raise SigningError(f"{target.name}@{digest} was pushed, but signing it failed: {exc.message}. It is not "
                           f"recorded as signed; sign it with `edgebench sign {target.name}@{digest} --key KEY`",
                           registry=target.registry) from None
    return attested


def _verify_index(registry: RegistryClient, target: Destination, tags: list[str], digest: str,
                  platforms: dict[str, dict[str, Any]]) -> bool:
    """Every tag serves the index; each entry names a platform we pushed, whose manifest is the tested image."""
    for tag in tags:
        remote, index = registry.manifest(target.repository, tag)
        if remote != digest:
            raise PublishError(f"registry {target.registry} serves {target.repository}:{tag} as {remote}, not the "
                               f"index {digest} that was pushed", registry=target.registry)
        named = {m["platform"]["architecture"]: m["digest"] for m in index.get("manifests", [])}
        if named != {arch: p["digest"] for arch, p in platforms.items()}:
            raise PublishError(f"{target.name}:{tag} names {named}, not what was pushed", registry=target.registry)
    for arch, pushed in platforms.items():
        _, manifest = registry.manifest(target.repository, pushed["digest"])
        if (manifest.get("config") or {}).get("digest") != pushed["image_id"]:
            raise PublishError(f"the linux/{arch} entry of {target.name} is not the tested image {pushed['image_id']}",
                               registry=target.registry)
    return True


def _reference(image: ImageRef | str) -> str:
    return image.tag if isinstance(image, ImageRef) else image


def _reference_of(image: Any) -> str:
    return image.tags[0] if image.tags else image.id


def _model(image: Any) -> str:
    model = (image.labels or {}).get("org.edgebench.model")
    if not model:
        raise PublishError(f"image {image.id[:19]} was not built by edgebench (no org.edgebench.model label)")
    return str(model)


def _image(docker: Any, reference: str) -> Any:
    import docker as sdk

    try:
        return docker.images.get(reference)
    except sdk.errors.ImageNotFound:
        raise PublishError(
            f"image {reference!r} is not in the engine: build it first (eb.build_image or `edgebench build`)",
            image=reference,
        ) from None


def _test_gate(store: Store, image: Any, name: str, force: bool) -> int | None:
    """The id of the passing test run that allows publishing ``image``; refuses unless ``force``."""
    tests = [r for r in store.runs(name, step="test", limit=1000) if (r.outputs or {}).get("image_id") == image.id]
    if tests and tests[0].status == "passed":
        return tests[0].id
    if force:
        return tests[0].id if tests else None
    if tests:
        checks = (tests[0].outputs or {}).get("checks", [])
        summary = "; ".join(f"{c['name']}: {c['message']}" for c in checks if not c["passed"])
        raise PublishError(
            f"the last test of image {image.id[:19]} failed (run {tests[0].id}: {summary}); fix it, or pass "
            "force=True to publish anyway (recorded)", image=image.id,
        )
    raise PublishError(
        f"image {image.id[:19]} has not been tested: run eb.test_image(...) or `edgebench test-image` first, "
        "or pass force=True to publish anyway (recorded)", image=image.id,
    )


def _push(docker: Any, image: Any, target: Destination, tags: list[str], creds: Credentials | None,
          progress: Progress) -> tuple[str, dict[str, int]]:
    digests = set()
    pushed: dict[str, int] = {}
    reused: set[str] = set()
    for index, tag in enumerate(tags, 1):
        image.tag(target.name, tag)
        progress.step(index, len(tags), f"pushing {target.name}:{tag}")
        stream = docker.api.push(target.name, tag=tag, stream=True, decode=True,
                                 auth_config=creds.auth_config() if creds else None)
        sizes: dict[str, int] = {}
        for event in stream:
            if "error" in event:
                raise PublishError(
                    f"push of {target.name}:{tag} failed: {event['error'].strip()}. No tag points at a partial "
                    "upload (the registry only tags a complete manifest); publishing again resumes it",
                    registry=target.registry,
                )
            layer, status = event.get("id", ""), event.get("status", "")
            detail = event.get("progressDetail") or {}
            if status == "Pushing" and detail.get("current"):
                sizes[layer] = max(sizes.get(layer, 0), int(detail["current"]))
            elif status == "Pushed":
                pushed[layer] = sizes.get(layer, 0)
            elif (status == "Layer already exists" or status.startswith("Mounted from")) and layer not in pushed:
                reused.add(layer)  # already in this registry: nothing sent
            if "aux" in event and event["aux"].get("Digest"):
                digests.add(event["aux"]["Digest"])
    if len(digests) != 1:
        raise PublishError(f"the engine reported digests {sorted(digests)} for {target.name}; expected one",
                           registry=target.registry)
    return digests.pop(), {"pushed": len(pushed), "reused": len(reused - set(pushed)),
                           "bytes": sum(pushed.values())}


def _verify(registry: RegistryClient, target: Destination, tags: list[str], digest: str, image_id: str) -> bool:
    for tag in tags:
        remote, manifest = registry.manifest(target.repository, tag)
        if remote != digest:
            raise PublishError(
                f"registry {target.registry} serves {target.repository}:{tag} with digest {remote}, but "
                f"{digest} was pushed", registry=target.registry,
            )
        config = (manifest.get("config") or {}).get("digest")
        if config != image_id:
            raise PublishError(
                f"{target.name}:{tag} has image config {config}, not the tested image {image_id}",
                registry=target.registry,
            )
    return True
