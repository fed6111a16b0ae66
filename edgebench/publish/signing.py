"""Sign, attest and verify published images with cosign (2.x, key pair, fully offline: no transparency log, no
trust-root download), stored the way cosign stores them on a registry without the referrers API (tags
``sha256-<hex>.sig`` and ``.att`` in the same repository), so that ``cosign verify``, Flux, Kyverno and podman's
sigstore policy accept what edgebench signs.

Attestations (in-toto statements in DSSE envelopes, subject = the pushed digest), per image manifest:

=============  ===============================================  ==============================================
kind           predicate type                                   predicate
=============  ===============================================  ==============================================
sbom           ``https://cyclonedx.org/bom``                    the image's own CycloneDX SBOM (its model hash
                                                                must be the card's sha256)
image-test     ``https://edgebench.dev/attestations/image-test/v1``  the passing image test of that image
bench          ``https://edgebench.dev/attestations/bench/v1``  the newest bench of the model's bytes
parity         ``https://edgebench.dev/attestations/parity/v1`` the card's parity report
=============  ===============================================  ==============================================

The private key's password comes from ``COSIGN_PASSWORD`` (or ``password=``) and goes to the cosign process only.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from .. import config
from ..core import render
from ..core.errors import EdgebenchError, InvalidInputError, SigningError

PREDICATES = {
    "sbom": "https://cyclonedx.org/bom",
    "image-test": "https://edgebench.dev/attestations/image-test/v1",
    "bench": "https://edgebench.dev/attestations/bench/v1",
    "parity": "https://edgebench.dev/attestations/parity/v1",
}
COSIGN_TYPES = {"sbom": "cyclonedx"}  # cosign's short names; the others go by their URI
_DIGEST_REF = re.compile(r"^(?P<repo>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
HOW = "scripts/tools.sh install fetches a pinned cosign 2.5 (Debian 13's); or see https://docs.sigstore.dev"

Runner = Callable[[list[str], dict[str, str]], "subprocess.CompletedProcess[str]"]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)


def split_digest_ref(reference: object) -> tuple[str, str]:
    """``REGISTRY/REPO@sha256:...`` -> (``REGISTRY/REPO``, ``sha256:...``); a tag is refused."""
    match = _DIGEST_REF.match(reference) if isinstance(reference, str) else None
    if not match:
        raise InvalidInputError(
            f"{reference!r} is not a reference by digest: sign and verify REGISTRY/REPOSITORY@sha256:<64 hex> (a tag "
            "can move to another image; `edgebench publish` prints the digest)", reference=str(reference))
    return match["repo"], match["digest"]


class Cosign:
    """The cosign binary, run offline. ``runner`` is the seam tests may replace."""

    def __init__(self, runner: Runner = _run) -> None:
        path = config.tool("cosign")
        if path is None:
            raise SigningError(f"cosign is not installed: {HOW}")
        self.path, self.runner = path, runner

    def __call__(self, *args: str, password: str | None = None, what: str) -> str:
        env = {**os.environ, "COSIGN_YES": "true"}
        if password is not None:
            env["COSIGN_PASSWORD"] = password
        done = self.runner([self.path, *args], env)
        if done.returncode != 0:
            raise SigningError(f"{what} failed: {_cosign_error(done.stderr)}", command=args[0])
        return done.stdout


def _cosign_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    text = next((line for line in reversed(lines) if line.startswith("Error:")), lines[-1] if lines else "")
    text = text.removeprefix("Error: ")
    if "decryption failed" in text:
        return "the key's password is wrong (set COSIGN_PASSWORD to the password the key was made with)"
    if "no signatures found" in text or "no matching signatures" in text:
        return f"no signature by this key ({text})"
    if "connection refused" in text or "no such host" in text:
        return f"the registry is unreachable ({text})"
    return text[:500]


def check_private_key(key: str | os.PathLike[str]) -> Path:
    """The private key file, refused when missing or readable by others."""
    path = Path(key)
    if not path.is_file():
        raise InvalidInputError(f"private key not found: {path} (make one with `edgebench keys generate`)",
                                path=str(path))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningError(f"private key {path} is readable by others (mode {mode:o}): refusing to use it; run "
                           f"`chmod 600 {path}`", path=str(path))
    return path


def generate_keys(out: str | os.PathLike[str], *, password: str | None = None, runner: Runner = _run) -> dict[str, str]:
    """A cosign key pair in ``out`` (``cosign.key``, 0600, and ``cosign.pub``); the password comes from
    ``password`` or ``COSIGN_PASSWORD`` and is never written anywhere else."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "cosign.key").exists():
        raise InvalidInputError(f"{folder / 'cosign.key'} exists: a key pair is never overwritten", path=str(folder))
    if password is None and "COSIGN_PASSWORD" not in os.environ:
        raise InvalidInputError("set COSIGN_PASSWORD (the password that protects the private key)")
    cosign = Cosign(runner)
    with contextlib.chdir(folder):
        cosign("generate-key-pair", password=password, what="making the key pair")
    (folder / "cosign.key").chmod(0o600)
    return {"private": str(folder / "cosign.key"), "public": str(folder / "cosign.pub")}


def sign_and_attest(reference: str, key: str | os.PathLike[str], predicates: dict[str, dict[str, Any]], *,
                    recursive: bool = False, password: str | None = None, runner: Runner = _run) -> list[str]:
    """Sign ``REGISTRY/REPO@sha256:...`` (and, ``recursive``, every manifest an index names) and attach one
    attestation per predicate kind; returns the kinds attested."""
    split_digest_ref(reference)
    key_path = check_private_key(key)
    cosign = Cosign(runner)
    flags = ["--key", str(key_path), "--tlog-upload=false"]
    cosign("sign", *flags, *(["--recursive"] if recursive else []), reference, password=password,
           what=f"signing {reference}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, predicate in predicates.items():
            file = Path(tmp) / f"{kind}.json"
            file.write_text(json.dumps(predicate))
            cosign("attest", *flags, "--type", COSIGN_TYPES.get(kind, PREDICATES[kind]), "--predicate", str(file),
                   reference, password=password, what=f"attesting the {kind} of {reference}")
    return list(predicates)


def public_key_of(key: str | os.PathLike[str], out: str | os.PathLike[str], *, password: str | None = None,
                  runner: Runner = _run) -> Path:
    """Write the public key of the private ``key`` to ``out`` (to verify what was just signed)."""
    cosign = Cosign(runner)
    text = cosign("public-key", "--key", str(check_private_key(key)), password=password,
                  what=f"reading the public key of {key}")
    Path(out).write_text(text)
    return Path(out)


# -- verify ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyCheck:
    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found for one digest: the signature, each required attestation, per platform."""

    reference: str
    checks: list[VerifyCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[VerifyCheck]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return f"verified {self.reference}: " + ", ".join(c.name for c in self.checks)
        return f"NOT verified {self.reference}: " + "; ".join(f"{c.name}: {c.message}" for c in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def _repr_html_(self) -> str:
        rows = [(c.name, "pass" if c.passed else "fail", c.message) for c in self.checks]
        return (f"<div><p>Verification {render.verdict(self.passed)}: <code>{escape(self.reference)}</code>"
                f"</p>{render.table(['check', 'verdict', 'message'], rows)}</div>")


def verify(reference: str, key: str | os.PathLike[str], require: Sequence[str] = ("sbom", "image-test"), *,
           local: str | os.PathLike[str] | None = None, expected_sha256: str | None = None,
           runner: Runner = _run) -> VerifyReport:
    """Verify ``REGISTRY/REPO@sha256:...`` (or the same digest in the OCI layout ``local``): the signature by
    ``key`` (a public key), each attestation kind in ``require`` signed by it with its subject equal to the
    digest, the image test passed for the image's platform, and the SBOM's model hash equal to
    ``expected_sha256`` when given. An index is verified with each image it names."""
    repo, _ = split_digest_ref(reference)
    unknown = sorted(set(require) - set(PREDICATES))
    if unknown:
        raise InvalidInputError(f"unknown attestation {unknown[0]!r}: choose from {', '.join(PREDICATES)}")
    public = Path(key)
    if not public.is_file():
        raise InvalidInputError(f"public key not found: {public}", path=str(public))
    cosign = Cosign(runner)
    checks: list[VerifyCheck] = []
    items = _children(reference, local)
    for name, child in items:  # an index is signed itself; its attestations are each platform's
        kinds = () if len(items) > 1 and not name else require
        # in an archive, each platform's image is a layout of its own (cosign saves an index's signatures only)
        where = Path(local) / "platforms" / name.replace("/", "-") if local and name else local
        checks += _verify_one(cosign, f"{repo}@{child}", public, kinds, where, expected_sha256,
                              prefix=f"{name}: " if name else "")
    return VerifyReport(reference, checks)


def _children(reference: str, local: Any) -> list[tuple[str, str]]:
    """(label, digest) of what to verify: the digest itself, plus each platform's manifest for an index."""
    repo, digest = split_digest_ref(reference)
    if local:
        index = _local_manifest(local, digest)
    else:
        from .registry import RegistryClient, find_credentials

        registry, _, repository = repo.partition("/")
        try:
            _, index = RegistryClient(registry, find_credentials(registry)).manifest(repository, digest)
        except EdgebenchError:
            index = {}
    items = [("", digest)]
    if index.get("mediaType", "").endswith(("image.index.v1+json", "manifest.list.v2+json")):
        items += [(f"linux/{m['platform']['architecture']}", m["digest"]) for m in index.get("manifests", [])
                  if m.get("platform")]
    return items


def _verify_one(cosign: Cosign, reference: str, public: Path, require: Sequence[str], local: Any,
                expected_sha256: str | None, prefix: str) -> list[VerifyCheck]:
    _, digest = split_digest_ref(reference)
    where = ["--local-image", str(local)] if local else [reference]
    flags = ["--key", str(public), "--insecure-ignore-tlog"]
    checks = []
    try:
        out = cosign("verify", *flags, *where, what=f"verifying the signature of {reference}")
        signed = {json.loads(out)[0]["critical"]["image"]["docker-manifest-digest"]} if out.strip() else set()
        ok = digest in signed
        checks.append(VerifyCheck(f"{prefix}signature", ok, f"signed by {public.name}" if ok else
                                  f"the signature names {sorted(signed)}, not {digest}"))
    except SigningError as exc:
        return [VerifyCheck(f"{prefix}signature", False, exc.message)]
    for kind in require:
        checks.append(_attestation(cosign, flags, where, kind, digest, expected_sha256, prefix))
    return checks


def _attestation(cosign: Cosign, flags: list[str], where: list[str], kind: str, digest: str,
                 expected_sha256: str | None, prefix: str) -> VerifyCheck:
    name = f"{prefix}{kind}"
    try:
        out = cosign("verify-attestation", *flags, "--type", COSIGN_TYPES.get(kind, PREDICATES[kind]), *where,
                     what=f"verifying the {kind} attestation")
    except SigningError as exc:
        if "no matching subject digest" in exc.message:  # cosign checks the subject too
            return VerifyCheck(name, False, f"signed, but its subject is another digest, not {digest}")
        return VerifyCheck(name, False, f"missing or not signed by this key: {exc.message}")
    statements = [json.loads(base64.b64decode(json.loads(line)["payload"])) for line in out.splitlines() if line]
    mine = [s for s in statements if any(sub.get("digest", {}).get("sha256") == digest.split(":")[1]
                                         for sub in s.get("subject", []))]
    if not mine:
        subjects = sorted({sub.get("digest", {}).get("sha256", "?")[:12] for s in statements for sub in
                           s.get("subject", [])})
        return VerifyCheck(name, False, f"signed, but its subject is {', '.join(subjects)}..., not {digest}")
    predicate = mine[-1]["predicate"]
    if kind == "image-test":
        if not predicate.get("report", {}).get("passed"):
            return VerifyCheck(name, False, "the attested image test did not pass")
        platform = predicate["report"].get("platform")
        return VerifyCheck(name, True, f"passed on {platform}" + (" (emulated)" if predicate["report"].get(
            "emulated") else ""))
    if kind == "sbom":
        hashes = predicate.get("metadata", {}).get("component", {}).get("hashes", [])
        model = next((h.get("content") for h in hashes if h.get("alg") == "SHA-256"), None)
        if expected_sha256 and model != expected_sha256:
            return VerifyCheck(name, False, f"the SBOM's model hash {str(model)[:12]}... is not the card's "
                                            f"{expected_sha256[:12]}...")
        return VerifyCheck(name, True, f"CycloneDX, model sha256 {str(model)[:12]}...")
    return VerifyCheck(name, True, f"{PREDICATES[kind]} for {predicate.get('model', '?')}")


def _local_manifest(local: Any, digest: str) -> dict[str, Any]:
    try:
        return dict(json.loads((Path(local) / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()))
    except (OSError, ValueError):
        return {}


def image_sbom(docker: Any, image_id: str) -> dict[str, Any]:
    """The CycloneDX SBOM an edgebench image carries (``/opt/edgebench/model/sbom.cdx.json``)."""
    container = docker.containers.create(image_id, command=["true"])
    try:
        chunks, _ = container.get_archive("/opt/edgebench/model/sbom.cdx.json")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.getmembers()[0]
            data = tar.extractfile(member)
            assert data is not None
            return dict(json.loads(data.read()))
    finally:
        container.remove(force=True)


def predicates_for(store: Any, docker: Any, image: Any) -> dict[str, dict[str, Any]]:
    """What edgebench attests about one image: its SBOM (model hash checked against the card), its passing image
    test, the model's parity report and newest bench (when there is one)."""
    from ..state import belongs

    card = store.get((image.labels or {}).get("org.edgebench.model", ""))
    sbom = image_sbom(docker, image.id)
    hashes = sbom.get("metadata", {}).get("component", {}).get("hashes", [])
    model_hash = next((h.get("content") for h in hashes if h.get("alg") == "SHA-256"), None)
    if model_hash != card.sha256:
        raise SigningError(f"the SBOM in image {image.id[:19]} names model sha256 {str(model_hash)[:12]}..., but "
                           f"{card.ref} is {card.sha256[:12]}...: rebuild the image; nothing was signed",
                           image=image.id)
    runs = [r for r in store.runs(card.name, limit=1000) if belongs(r, card)]
    about = {"model": card.ref, "sha256": card.sha256, "image_id": image.id}
    found: dict[str, dict[str, Any]] = {"sbom": sbom}
    test = next((r for r in runs if r.step == "test" and r.status == "passed"
                 and (r.outputs or {}).get("image_id") == image.id), None)
    if test is not None:
        found["image-test"] = {**about, "run": test.id, "report": test.outputs}
    if card.parity is not None:
        found["parity"] = {**about, "report": card.parity.to_dict()}
    bench = next((r for r in runs if r.step == "bench" and r.outputs), None)
    if bench is not None:
        found["bench"] = {**about, "run": bench.id, "report": bench.outputs}
    return found
