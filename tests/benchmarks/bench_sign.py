"""Signing benchmark: the time and bytes that signing and attesting (cosign 2.5, offline key pair) add to a publish
of the digits random forest image, and to an archive for a disconnected site, measured in one run.

Needs a Docker Engine, cosign, Debian's docker-registry and the offline base (scripts/services.sh start).
Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_sign
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

import edgebench as eb
from edgebench.engine import docker_client
from edgebench.progress import Silent
from edgebench.publish.registry import RegistryClient
from tests.helpers import fresh_registry, stop_process


def attachment_bytes(client: RegistryClient, repository: str, digest: str) -> int:
    """Bytes of cosign's .sig and .att manifests of ``digest`` and the blobs they name."""
    total = 0
    for suffix in ("sig", "att"):
        status, _, body = client.request(f"/v2/{repository}/manifests/sha256-{digest.split(':')[1]}.{suffix}",
                                         ["application/vnd.oci.image.manifest.v1+json"])
        if status == 200:
            manifest = json.loads(body)
            total += len(body) + manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    return total


def main() -> None:
    os.environ.setdefault("COSIGN_PASSWORD", "benchmark")
    x, y = load_digits(return_X_y=True)
    docker = docker_client()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        store = eb.Store(tmp / "store")
        keys = eb.generate_keys(tmp / "keys")
        registry_process, registry = fresh_registry(tmp)
        client = RegistryClient(registry)
        image = None
        try:
            card = eb.export_model(RandomForestClassifier(100, random_state=0).fit(x, y), x[:200], "digits-rf",
                                   store=store)
            image = eb.build_image(card.ref, store=store, client=docker, progress=Silent())
            assert eb.test_image(image, store=store, client=docker, progress=Silent()).passed
            rows = []
            for repeat in range(3):
                start = time.perf_counter()
                plain = eb.publish(image, f"{registry}/plain{repeat}/digits-rf", ["1"], store=store, client=docker,
                                   progress=Silent())
                pushed = time.perf_counter() - start
                start = time.perf_counter()
                eb.sign(f"{plain.destination}@{plain.digest}", keys["private"], store=store, client=docker,
                        progress=Silent())
                signing = time.perf_counter() - start
                rows.append((pushed, signing, attachment_bytes(client, f"plain{repeat}/digits-rf", plain.digest)))
            print("publish of the digits forest image (push by the engine, manifest read back), then sign and attest "
                  "(signature + SBOM, image test, parity), verified:")
            for i, (pushed, signing, size) in enumerate(rows):
                kind = "first push" if i == 0 else "layers already there"
                print(f"  {kind:<22} push {pushed:5.2f} s, sign and attest {signing:5.2f} s "
                      f"({signing / pushed:4.2f}x the push), signatures and attestations {size / 1024:.1f} KiB")
            unsigned, signed = tmp / "unsigned.tar", tmp / "signed.tar"
            start = time.perf_counter()
            eb.publish(image, f"oci-archive:{unsigned}", store=store, client=docker, progress=Silent())
            plain_s = time.perf_counter() - start
            start = time.perf_counter()
            eb.publish(image, f"oci-archive:{signed}", sign=keys["private"], via=f"{registry}/hub/digits-rf",
                       store=store, client=docker, progress=Silent())
            signed_s = time.perf_counter() - start
            start = time.perf_counter()
            eb.load_verified(signed, keys["public"], to=f"{registry}/site/digits-rf")
            load_s = time.perf_counter() - start
            print("archive for a disconnected site:")
            print(f"  unsigned (uncompressed layers, written by edgebench) {plain_s:5.2f} s, "
                  f"{unsigned.stat().st_size / 2**20:6.1f} MiB")
            print(f"  signed (registry layers as pushed, gzip, + signatures and attestations, by cosign save) "
                  f"{signed_s:5.2f} s, {signed.stat().st_size / 2**20:6.1f} MiB")
            print(f"  load --verify into a site registry {load_s:5.2f} s")
        finally:
            stop_process(registry_process)
            if image is not None:
                docker.images.remove(image.id, force=True)


if __name__ == "__main__":
    main()
