"""Publish benchmark: push time and pushed size of the digits RandomForestClassifier(100) image to a fresh
loopback registry, then of a second push after a model-only change (only the model layer should travel).

Needs a Docker Engine, Debian's docker-registry and the offline base (scripts/services.sh start).
Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_publish
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

import edgebench as eb
from edgebench.engine import docker_client
from edgebench.progress import Silent
from edgebench.publish.registry import RegistryClient
from tests.helpers import fresh_registry


def main() -> None:
    x, y = load_digits(return_X_y=True)
    client = docker_client()
    with tempfile.TemporaryDirectory() as tmp:
        store = eb.Store(Path(tmp) / "store")
        registry_process, registry = fresh_registry(Path(tmp))
        images = []
        try:
            reader = RegistryClient(registry)
            seen: set[str] = set()
            print(f"digits RandomForestClassifier(100) to a fresh registry at {registry}")
            for seed in (0, 1):
                model = RandomForestClassifier(n_estimators=100, random_state=seed).fit(x, y)
                card = eb.export_model(model, x[:200], "digits-rf", store=store)
                image = eb.build_image(card.ref, store=store, client=client, progress=Silent())
                images.append(image)
                assert eb.test_image(image, store=store, client=client, progress=Silent()).passed
                result = eb.publish(image, f"{registry}/edge/digits-rf", [str(card.version)], store=store,
                                    client=client)
                _, manifest = reader.manifest("edge/digits-rf", str(card.version))
                new = [layer for layer in manifest["layers"] if layer["digest"] not in seen]
                seen |= {layer["digest"] for layer in manifest["layers"]}
                label = "first push" if seed == 0 else "after a model-only change"
                print(f"  {label:<26} {result.seconds:6.2f} s; {result.pushed_layers} of "
                      f"{len(manifest['layers'])} layers sent, {sum(la['size'] for la in new) / 2**20:7.2f} MiB "
                      f"compressed ({result.pushed_bytes / 2**20:.2f} MiB uncompressed); image "
                      f"{image.size_bytes / 2**20:.1f} MiB")
        finally:
            registry_process.terminate()
            registry_process.wait()
            for image in images:
                client.images.remove(image.id, force=True)


if __name__ == "__main__":
    main()
