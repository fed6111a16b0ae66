"""What a site needs to refuse unsigned images, from the public key: the node's own policy (CRI-O, podman and so
MicroShift and Red Hat's device-fleet manager read ``containers-policy.json`` with ``sigstoreSigned`` and a
``registries.d`` entry that turns on sigstore attachments) and, for clusters with Kyverno, a ``ClusterPolicy`` with
``verifyImages`` that also requires the SBOM and a passed image test. Offline: no transparency log, no trust root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import InvalidInputError
from .registry import parse_destination
from .signing import PREDICATES

#: Where the public key lands on a node (the policy names this path).
NODE_KEY = "/etc/containers/keys/edgebench.pub"


def trust_policy(public_key: str | os.PathLike[str], repositories: list[str], out: str | os.PathLike[str], *,
                 strict: bool = False, node_key: str = NODE_KEY) -> list[Path]:
    """Write the site's verification configuration for images under ``repositories`` (``REGISTRY/REPOSITORY``)
    into ``out``; ``strict`` rejects every other image on the node too. Returns the files written."""
    key = Path(public_key)
    try:
        pem = key.read_text()
    except OSError:
        raise InvalidInputError(f"public key not found: {key}", path=str(key)) from None
    if "PUBLIC KEY" not in pem:
        raise InvalidInputError(f"{key} is not a PEM public key (cosign.pub); never give a site the private key",
                                path=str(key))
    if not repositories:
        raise InvalidInputError("name at least one REGISTRY/REPOSITORY whose images must be signed")
    names = [parse_destination(r).name for r in repositories]
    folder = Path(out)
    (folder / "registries.d").mkdir(parents=True, exist_ok=True)
    (folder / "keys").mkdir(exist_ok=True)
    files = {
        folder / "keys" / "edgebench.pub": pem,
        folder / "containers-policy.json": json.dumps(containers_policy(names, node_key, strict), indent=2) + "\n",
        folder / "registries.d" / "edgebench.yaml": yaml.safe_dump(
            {"docker": {name: {"use-sigstore-attachments": True} for name in names}}, sort_keys=True),
        folder / "kyverno-verify-images.yaml": yaml.safe_dump(kyverno_policy(names, pem), sort_keys=False),
    }
    for path, text in files.items():
        path.write_text(text)
    return list(files)


def containers_policy(names: list[str], key_path: str, strict: bool) -> dict[str, Any]:
    """containers-policy.json(5): images under ``names`` must carry a sigstore signature by the key."""
    rule = [{"type": "sigstoreSigned", "keyPath": key_path, "signedIdentity": {"type": "matchRepository"}}]
    return {"default": [{"type": "reject" if strict else "insecureAcceptAnything"}],
            "transports": {"docker": {name: rule for name in names}}}


def kyverno_policy(names: list[str], pem: str) -> dict[str, Any]:
    """A Kyverno ClusterPolicy: pods may only run those images when signed by the key, with the SBOM and a passed
    image test attested; tags are replaced by the verified digest."""
    attestor = [{"count": 1, "entries": [{"keys": {"publicKeys": pem, "rekor": {"ignoreTlog": True},
                                                   "ctlog": {"ignoreSCT": True}}}]}]
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "edgebench-verify-images",
                     "annotations": {"policies.kyverno.io/title": "Only edgebench images that were signed and tested"}},
        "spec": {
            "webhookTimeoutSeconds": 30,
            "rules": [{
                "name": "signed-and-tested",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "imageReferences": [f"{name}*" for name in names],
                    "failureAction": "Enforce",
                    "mutateDigest": True,
                    "verifyDigest": True,
                    "required": True,
                    "attestors": attestor,
                    "attestations": [
                        {"type": PREDICATES["sbom"], "attestors": attestor},
                        {"type": PREDICATES["image-test"], "attestors": attestor,
                         "conditions": [{"all": [{"key": "{{ report.passed }}", "operator": "Equals",
                                                  "value": True}]}]},
                    ],
                }],
            }],
        },
    }
