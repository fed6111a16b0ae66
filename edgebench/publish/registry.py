"""The registry side of publishing: destinations and tags checked, credentials found (environment, docker
login, credential helpers; never stored), and a small client of the distribution API (ping, manifests, tags, PUT of
a manifest) with Basic and Bearer-token auth.

Why our own client rather than oras-py: the Docker Engine pushes every image (layers and manifests); what is left
is reading manifests back, listing tags and putting one index manifest. oras-py's ``upload_manifest`` sets the
image-manifest media type and validates against the image-manifest schema, so an index would go through its
lower-level ``do_request`` anyway, with requests and jsonschema as new run-time dependencies; this client is the
standard library only and is tested against real registries with htpasswd and token auth
(docs/architecture.md has the measurement).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import InvalidInputError, PublishError, first_line

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = (
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.list.v2+json",
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

    def request(self, path: str, accept: Sequence[str] = (), *, method: str = "GET", body: bytes | None = None,
                content_type: str | None = None) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(2):
            request = urllib.request.Request(self.base + path, method=method, data=body)
            if accept:
                request.add_header("Accept", ", ".join(accept))
            if content_type:
                request.add_header("Content-Type", content_type)
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

    def describe(self, repository: str, reference: str) -> tuple[str, int]:
        """The media type and size of the manifest under ``reference``, for an index entry."""
        status, headers, body = self.request(f"/v2/{repository}/manifests/{reference}", MANIFEST_TYPES)
        if status != 200:
            raise PublishError(f"registry {self.registry} has no manifest {repository}@{reference} (HTTP {status})",
                               registry=self.registry)
        return headers.get("content-type", MANIFEST_TYPES[1]).split(";")[0], len(body)

    def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
        """The digest and the manifest (or index) under ``reference``."""
        status, headers, body = self.request(f"/v2/{repository}/manifests/{reference}", MANIFEST_TYPES + INDEX_TYPES)
        if status != 200:
            raise PublishError(f"registry {self.registry} has no manifest {repository}:{reference} (HTTP {status})",
                               registry=self.registry)
        return headers.get("docker-content-digest", ""), json.loads(body)

    def put_manifest(self, repository: str, reference: str, manifest: bytes, media_type: str) -> str:
        """PUT ``manifest`` under ``reference`` (a tag or its digest); returns the digest the registry stored."""
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        status, headers, body = self.request(f"/v2/{repository}/manifests/{reference}", method="PUT", body=manifest,
                                             content_type=media_type)
        if status not in (200, 201):
            raise PublishError(f"registry {self.registry} refused the manifest {repository}:{reference} (HTTP "
                               f"{status}: {body.decode(errors='replace')[:300]})", registry=self.registry)
        stored = headers.get("docker-content-digest", digest)
        if stored != digest:
            raise PublishError(f"registry {self.registry} stored {repository}:{reference} as {stored}, not {digest}",
                               registry=self.registry)
        return digest

    def tags(self, repository: str) -> list[str]:
        status, _, body = self.request(f"/v2/{repository}/tags/list")
        if status == 404:
            return []
        if status != 200:
            raise PublishError(f"registry {self.registry} answered HTTP {status} listing tags", registry=self.registry)
        return list(json.loads(body).get("tags") or [])
