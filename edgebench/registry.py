"""Publish tested images: push by digest through the Docker Engine, read the manifest back over the
distribution API, optionally pull back and re-test; or write an archive for an air-gapped site.

Credentials come from ``credentials=``, from ``EDGEBENCH_REGISTRY_USERNAME`` / ``EDGEBENCH_REGISTRY_PASSWORD``,
or from the user's docker config (``auths`` and credential helpers). They are handed to the engine and to the
registry client only, never written to the store, logs or reports.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any

from .core.errors import InvalidInputError, PublishError, first_line
from .core.images import ImageRef, ImageTestReport
from .engine import docker_client
from .progress import Progress, auto
from .store import Store, open_store

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST = re.compile(r"(?:localhost|[A-Za-z0-9.-]+\.[A-Za-z0-9-]+|\[?[0-9a-fA-F:.]+\]?)(?::\d+)?|[A-Za-z0-9-]+:\d+")
ARCHIVE_PREFIX = "oci-archive:"


@dataclass(frozen=True)
class Destination:
    registry: str
    repository: str

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"


def parse_destination(value: object) -> Destination:
    """``REGISTRY/REPOSITORY`` such as ``127.0.0.1:5000/edge/digits-rf`` or ``ghcr.io/team/digits-rf``."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"registry reference must be a non-empty string, got {value!r}")
    if "@" in value:
        raise InvalidInputError(f"registry reference {value!r} has a digest: give REGISTRY/REPOSITORY")
    registry, _, repository = value.partition("/")
    if not repository:
        raise InvalidInputError(
            f"registry reference {value!r} has no repository: give REGISTRY/REPOSITORY, e.g. {value}/edge/model",
            registry=value,
        )
    if not _HOST.fullmatch(registry):
        raise InvalidInputError(
            f"registry reference {value!r} does not start with a registry host (e.g. registry.example.com or "
            "127.0.0.1:5000)", registry=registry,
        )
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        raise InvalidInputError(f"registry reference {value!r} has a tag: pass tags separately (tags=[...])")
    for component in repository.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidInputError(
                f"repository {repository!r} is not valid: path components are lowercase letters and digits, "
                "separated by '.', '_' or '-'", registry=registry,
            )
    return Destination(registry, repository)


def check_tags(tags: Sequence[str]) -> list[str]:
    checked = []
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise InvalidInputError(
                f"tag {tag!r} is not valid: up to 128 letters, digits, '_', '.' and '-', not starting with "
                "'.' or '-'", tag=str(tag),
            )
        checked.append(tag)
    return checked


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


def find_credentials(registry: str, given: Credentials | None = None) -> Credentials | None:
    """``given``, else the environment, else the docker config (including credential helpers)."""
    if given is not None:
        return given
    username, password = os.environ.get("EDGEBENCH_REGISTRY_USERNAME"), os.environ.get("EDGEBENCH_REGISTRY_PASSWORD")
    if username and password:
        return Credentials(username, password)
    from docker import auth, credentials, errors

    try:
        config = auth.load_config()
    except (errors.InvalidConfigFile, OSError, ValueError) as exc:
        raise PublishError(f"the docker config ({os.environ.get('DOCKER_CONFIG') or '~/.docker'}/config.json) "
                           f"does not read: {exc}; fix it, or set EDGEBENCH_REGISTRY_USERNAME and "
                           "EDGEBENCH_REGISTRY_PASSWORD", registry=registry) from None
    try:
        found = config.resolve_authconfig(registry)
    except (credentials.errors.StoreError, errors.DockerException) as exc:
        helper = config.get_credential_store(registry) or "?"
        while exc.__cause__ is not None or exc.__context__ is not None:  # the helper's own words are innermost
            inner = exc.__cause__ or exc.__context__
            if not isinstance(inner, credentials.errors.StoreError):
                break
            exc = inner
        raise PublishError(
            f"the docker credential helper docker-credential-{helper} failed for {registry}: "
            f"{first_line(exc)}. Fix the helper (or log in again with `docker login {registry}`), or set "
            "EDGEBENCH_REGISTRY_USERNAME and EDGEBENCH_REGISTRY_PASSWORD", registry=registry,
        ) from None
    found = {k.lower(): v for k, v in (found or {}).items()}  # `auths` entries are lowercase, helpers' are not
    if found.get("username") and found.get("password"):
        return Credentials(found["username"], found["password"])
    return None


Transport = Callable[[urllib.request.Request, float], tuple[int, dict[str, str], bytes]]


def urllib_transport(request: urllib.request.Request, timeout: float) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


class RegistryClient:
    """A distribution-API reader (ping, manifests, tags) with Basic and Bearer token auth.

    Loopback registries are spoken to over plain HTTP, as the engine does; others over HTTPS.
    """

    def __init__(self, registry: str, credentials: Credentials | None = None, *, insecure: bool | None = None,
                 transport: Transport = urllib_transport, timeout: float = 15) -> None:
        self.registry = registry
        self.credentials = credentials
        host = registry.rsplit(":", 1)[0].strip("[]") if registry.count(":") == 1 else registry
        local = host in {"localhost", "::1"} or host.startswith("127.")
        self.base = f"{'http' if (local if insecure is None else insecure) else 'https'}://{registry}"
        self.transport = transport
        self.timeout = timeout
        self.token: str | None = None

    def request(self, path: str, accept: Sequence[str] = ()) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(2):
            request = urllib.request.Request(self.base + path, method="GET")
            if accept:
                request.add_header("Accept", ", ".join(accept))
            if self.token:
                request.add_header("Authorization", f"Bearer {self.token}")
            elif attempt and self.credentials:
                raw = f"{self.credentials.username}:{self.credentials.password}".encode()
                request.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
            try:
                status, headers, body = self.transport(request, self.timeout)
            except OSError as exc:
                raise PublishError(
                    f"registry {self.registry} is unreachable ({getattr(exc, 'reason', exc)}): check the address "
                    "and that the registry is running", registry=self.registry,
                ) from None
            if status != 401 or attempt:
                return status, headers, body
            challenge = headers.get("www-authenticate", "")
            if challenge.lower().startswith("bearer"):
                self.token = self._token(challenge)
            elif not self.credentials:
                return status, headers, body
        raise AssertionError("unreachable")

    def _token(self, challenge: str) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
        request = urllib.request.Request(f"{params.get('realm', '')}?{query}")
        if self.credentials:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
        try:
            status, _, body = self.transport(request, self.timeout)
        except OSError as exc:
            raise PublishError(f"the token service of registry {self.registry} at {params.get('realm')} is "
                               f"unreachable ({getattr(exc, 'reason', exc)})", registry=self.registry) from None
        if status in (401, 403):
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
            raise PublishError(
                f"registry {self.registry} refused {who} (its token service answered HTTP {status}): check the "
                "credentials (docker login, a credential helper, or EDGEBENCH_REGISTRY_USERNAME / "
                "EDGEBENCH_REGISTRY_PASSWORD); nothing was pushed", registry=self.registry)
        if status != 200:
            raise PublishError(f"registry {self.registry} refused a token (HTTP {status})", registry=self.registry)
        data = json.loads(body)
        return str(data.get("token") or data.get("access_token"))

    def ping(self) -> None:
        """Fail early, before anything is pushed, when the registry is unreachable or refuses the credentials."""
        status, _, _ = self.request("/v2/")
        if status == 401:
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
            raise PublishError(
                f"registry {self.registry} refused {who}: check the credentials (docker login, a credential "
                "helper, or EDGEBENCH_REGISTRY_USERNAME / EDGEBENCH_REGISTRY_PASSWORD); nothing was pushed",
                registry=self.registry,
            )
        if status != 200:
            raise PublishError(f"registry {self.registry} answered HTTP {status} at /v2/", registry=self.registry)

    def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
        status, headers, body = self.request(f"/v2/{repository}/manifests/{reference}", MANIFEST_TYPES)
        if status != 200:
            raise PublishError(f"registry {self.registry} has no manifest {repository}:{reference} (HTTP {status})",
                               registry=self.registry)
        return headers.get("docker-content-digest", ""), json.loads(body)

    def tags(self, repository: str) -> list[str]:
        status, _, body = self.request(f"/v2/{repository}/tags/list")
        if status == 404:
            return []
        if status != 200:
            raise PublishError(f"registry {self.registry} answered HTTP {status} listing tags", registry=self.registry)
        return list(json.loads(body).get("tags") or [])


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

    @property
    def references(self) -> list[str]:
        if self.destination.startswith(ARCHIVE_PREFIX):
            return [f"{self.destination} (manifest {self.digest}, image {self.image_id})"]
        return [f"{self.destination}:{t}" for t in self.tags] + [f"{self.destination}@{self.digest}"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pull_back"] = self.pull_back.to_dict() if self.pull_back else None
        return data

    def _repr_html_(self) -> str:
        items = "".join(f"<li><code>{escape(r)}</code></li>" for r in self.references)
        note = " (forced past the test gate)" if self.forced else ""
        return (f"<div><p>Published {escape(self.model)}{note} in {self.seconds:.1f} s, "
                f"{self.pushed_layers} layers pushed ({self.pushed_bytes / 2**20:.1f} MiB), "
                f"{self.reused_layers} already there; manifest read back: "
                f"{'verified' if self.verified else 'not verified'}</p><ul>{items}</ul></div>")


def publish(
    image: ImageRef | str,
    destination: str,
    tags: Sequence[str] = (),
    *,
    force: bool = False,
    pull_back: bool = False,
    credentials: Credentials | None = None,
    store: Store | str | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> PublishResult:
    """Push a tested image to ``REGISTRY/REPOSITORY`` under ``tags`` (default: the model version), or write it
    to ``oci-archive:FILE.tar``.

    Only an image whose last test passed is published unless ``force=True`` (recorded). After the push the
    manifest is read back for every tag and must carry the digest that was pushed, and its config must be the
    tested image. ``pull_back=True`` pulls by digest and runs the image test on what came back.
    """
    store = open_store(store)
    docker = docker_client(client)
    found = _image(docker, image.tag if isinstance(image, ImageRef) else image)
    model = (found.labels or {}).get("org.edgebench.model")
    if not model:
        raise PublishError(f"image {found.id[:19]} was not built by edgebench (no org.edgebench.model label)")
    name, _, version = model.partition(":")
    test_run = _test_gate(store, found, name, force)
    if destination.startswith(ARCHIVE_PREFIX):
        from .transfer import export_archive

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
            from .image.tester import test_image

            progress.step(1, 1, f"pulling {target.name}@{digest} back")
            again = docker.images.pull(f"{target.name}@{digest}",
                                       auth_config=creds.auth_config() if creds else None)
            if again.id != found.id:
                raise PublishError(f"pulled {target.name}@{digest} back as {again.id}, not the tested {found.id}")
            pulled = test_image(f"{target.name}@{digest}", store=store, client=docker, progress=progress)
            if not pulled.passed:
                raise PublishError(f"the image pulled back from {target.registry} failed its test: "
                                   f"{pulled.summary()}", registry=target.registry)
        result = PublishResult(
            image=found.tags[0] if found.tags else found.id, image_id=found.id, model=model,
            destination=target.name, digest=digest, tags=tags, verified=verified, forced=force,
            test_run=test_run, pushed_layers=layers["pushed"], reused_layers=layers["reused"],
            pushed_bytes=layers["bytes"], seconds=round(time.perf_counter() - start, 3), pull_back=pulled,
        )
    except BaseException as exc:
        store.finish_run(run_id, "failed", {"error": str(exc)})
        raise
    store.finish_run(run_id, "passed", result.to_dict())
    progress.close()
    return result


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
