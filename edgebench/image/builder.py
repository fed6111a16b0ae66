"""Build an inference image for a stored model with the Docker Engine (docker SDK), and record it."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.errors import BuildError, InvalidInputError
from ..core.images import ImageRef
from ..core.names import ModelRef
from ..engine import docker_client
from ..progress import Progress, auto
from ..store import Store, now, open_store
from .context import BuildSpec, write_context

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")
_TAG = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?$")


def image_tag(name: str, version: int, arch: str) -> str:
    return f"edgebench/{name}:{version}-{arch}"


def write_build_context(
    ref: str | ModelRef, out: str | os.PathLike[str], platform: str = "linux/amd64", *,
    base_image: str | None = None, run: Sequence[str] = (), store: Store | str | None = None,
) -> Path:
    """Write the build context of ``ref`` into ``out`` for buildah, kaniko or OpenShift builds."""
    store = open_store(store)
    card = store.get(ref)
    spec = BuildSpec(platform, base_image or "", run=tuple(run))
    folder = Path(out)
    write_context(card, store.model_path(card), spec, folder, now())
    return folder


def build_image(
    ref: str | ModelRef,
    platform: str = "linux/amd64",
    *,
    base_image: str | None = None,
    run: Sequence[str] = (),
    tags: Sequence[str] = (),
    store: Store | str | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> ImageRef:
    """Build the inference image of a stored model.

    Parameters
    ----------
    ref : "name" or "name:version"
    platform : "linux/amd64" or "linux/arm64"
        An arm64 image builds on an amd64 host: the runtime is resolved from aarch64 wheels and the
        Dockerfile has no RUN step.
    base_image : str, optional
        Default ``$EDGEBENCH_BASE_IMAGE`` or ``python:3.11-slim-bookworm``; ``{arch}`` becomes amd64/arm64.
    run : shell commands added as RUN steps (for example a system library); they need an emulator for a
        foreign platform and network for package managers.
    tags : extra tags; the image is always tagged ``edgebench/NAME:VERSION-ARCH``.
    """
    store = open_store(store)
    card = store.get(ref)
    spec = BuildSpec(platform, base_image or "", run=tuple(run))
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise InvalidInputError(f"invalid image tag {tag!r}: use lowercase repository[:tag]", tag=str(tag))
    progress = progress or auto("build")
    docker = docker_client(client)
    run_id = store.start_run("build", card.name, card.version,
                             {"platform": spec.platform, "base_image": spec.base_image, "run": list(spec.run)})
    log: list[str] = []
    try:
        _check_base(docker, spec, progress)
        tag = image_tag(card.name, card.version, spec.arch)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="edgebench-context-") as tmp:
            progress.step(0, 1, "writing the build context")
            context_digest = write_context(
                card, store.model_path(card), spec, Path(tmp) / "context", now(),
                progress=lambda m: progress.step(0, 1, m),
            )
            image_id = _build(docker, Path(tmp) / "context", tag, spec, progress, log)
        image = docker.images.get(image_id)
        for extra in tags:
            repository, _, label = extra.partition(":")
            image.tag(repository, label or "latest")
        image.reload()
        result = ImageRef(
            id=image.id, tags=[tag, *tags], size_bytes=int(image.attrs["Size"]), platform=spec.platform,
            model=card.ref, labels=dict(image.labels), context_digest=context_digest,
            base_image=spec.base_image, build_seconds=round(time.perf_counter() - start, 3), build_log=log,
        )
    except BaseException as exc:
        store.finish_run(run_id, "failed", {"error": str(exc)}, log="\n".join(log) or None)
        raise
    store.finish_run(run_id, "passed", {**result.to_dict(), "build_log": None}, log="\n".join(log))
    progress.close()
    return result


def _check_base(docker: Any, spec: BuildSpec, progress: Progress) -> None:
    import docker as sdk

    try:
        base = docker.images.get(spec.base_image)
    except sdk.errors.ImageNotFound:
        progress.step(0, 1, f"pulling {spec.base_image} for {spec.platform}")
        try:
            base = docker.images.pull(spec.base_image, platform=spec.platform)
        except sdk.errors.APIError as exc:
            raise BuildError(
                f"base image {spec.base_image!r} is not in the engine and could not be pulled "
                f"({exc.explanation or exc}). Pull it where a registry is reachable, or build the offline base "
                "with scripts/build-base-image.sh and set EDGEBENCH_BASE_IMAGE=edgebench/base:bookworm-py311-{arch}",
                image=spec.base_image, platform=spec.platform,
            ) from exc
    arch = base.attrs.get("Architecture")
    if arch != spec.arch:
        raise BuildError(
            f"base image {spec.base_image!r} is {arch}, but the target platform is {spec.platform}: use a base "
            f"image for {spec.arch}",
            image=spec.base_image, platform=spec.platform,
        )


def _build(docker: Any, context: Path, tag: str, spec: BuildSpec, progress: Progress, log: list[str]) -> str:
    image_id = None
    errors = []
    stream = docker.api.build(path=str(context), tag=tag, platform=spec.platform, rm=True, forcerm=True,
                              decode=True, pull=False)
    for event in stream:
        if "stream" in event:
            for line in event["stream"].splitlines():
                if not line.strip():
                    continue
                log.append(line)
                progress.log(line)
                step = _STEP.match(line)
                if step:
                    progress.step(int(step[1]), int(step[2]), step[3])
        if "aux" in event and "ID" in event["aux"]:
            image_id = event["aux"]["ID"]
        if "error" in event:
            errors.append(event["error"].strip())
            log.append(event["error"].strip())
    if errors or image_id is None:
        failing = _failing_step(log)
        raise BuildError(
            f"image build for {spec.platform} failed: {'; '.join(errors) or 'no image id returned'}\n{failing}",
            image=tag, platform=spec.platform,
        )
    return str(image_id)


def _failing_step(log: list[str]) -> str:
    """The last step's instruction and everything it printed."""
    for index in range(len(log) - 1, -1, -1):
        if _STEP.match(log[index]):
            return "\n".join(log[index:][-40:])
    return "\n".join(log[-40:])
