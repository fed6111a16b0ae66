"""Multi-arch benchmark: for the digits random forest, the digits MLP and an imported small CNN, the build time per
architecture, the image test natively (amd64) and under emulation (arm64) side by side, the largest difference of
the arm64 answers from the host's golden outputs per output, and the time to push a two-arch index to a fresh
registry, first and after a model-only change.

Needs a Docker Engine, arm64 emulation, Debian's docker-registry and the offline bases (scripts/services.sh start).
Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_multiarch
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier

import edgebench as eb
from edgebench.engine import docker_client
from edgebench.progress import Silent
from tests.helpers import fresh_registry, small_cnn, stop_process


def models(store: eb.Store, tmp: Path, seed: int) -> list[eb.ModelCard]:
    x, y = load_digits(return_X_y=True)
    cnn = small_cnn(tmp / f"cnn-{seed}.onnx", channels=8, seed=seed)
    sample = (x[:4] / 16).reshape(4, 1, 8, 8).repeat(4, axis=2).repeat(4, axis=3)[:, :, :28, :28]
    sample = np.pad(sample, ((0, 0), (0, 0), (0, 28 - sample.shape[2]), (0, 28 - sample.shape[3]))).astype(np.float32)
    return [
        eb.export_model(RandomForestClassifier(100, random_state=seed).fit(x, y), x[:200], "digits-rf", store=store),
        eb.export_model(MLPClassifier((64,), max_iter=300, random_state=seed).fit(x, y), x[:200], "digits-mlp",
                        store=store),
        eb.import_onnx(cnn, sample, "small-cnn", store=store),
    ]


def main() -> None:
    docker = docker_client()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        store = eb.Store(tmp / "store")
        registry_process, registry = fresh_registry(tmp)
        built = []
        try:
            print(f"{'model':<14} {'build amd64':>11} {'build arm64':>11} {'test amd64':>10} {'test arm64':>10} "
                  f"{'x':>5}  largest arm64 - host difference per output")
            cards = models(store, tmp, 0)
            images: dict[str, dict[str, eb.ImageRef]] = {}
            for card in cards:
                row, images[card.name] = {}, {}
                for platform in ("linux/amd64", "linux/arm64"):
                    start = time.perf_counter()
                    image = eb.build_image(card.ref, platform, store=store, client=docker, progress=Silent())
                    row[f"build {platform}"] = time.perf_counter() - start
                    built.append(image)
                    images[card.name][platform] = image
                    start = time.perf_counter()
                    report = eb.test_image(image, store=store, client=docker, progress=Silent())
                    row[f"test {platform}"] = time.perf_counter() - start
                    assert report.passed, report.summary()
                    if report.emulated:
                        diffs = ", ".join(f"{k} {v:.2g}" for k, v in report.output_differences.items())
                ratio = row["test linux/arm64"] / row["test linux/amd64"]
                print(f"{card.name:<14} {row['build linux/amd64']:>10.1f}s {row['build linux/arm64']:>10.1f}s "
                      f"{row['test linux/amd64']:>9.1f}s {row['test linux/arm64']:>9.1f}s {ratio:>5.1f}  {diffs}")
            print("\npush of a two-arch index (digits-rf) to a fresh registry:")
            for attempt in ("first", "after a model-only change"):
                if attempt != "first":
                    (card,) = [c for c in models(store, tmp, 1) if c.name == "digits-rf"]
                    images["digits-rf"] = {}
                    for platform in ("linux/amd64", "linux/arm64"):
                        image = eb.build_image(card.ref, platform, store=store, client=docker, progress=Silent())
                        built.append(image)
                        assert eb.test_image(image, store=store, client=docker, progress=Silent()).passed
                        images["digits-rf"][platform] = image
                pair = list(images["digits-rf"].values())
                start = time.perf_counter()
                result = eb.publish(pair, f"{registry}/edge/digits-rf", ["latest"], store=store, client=docker,
                                    progress=Silent())
                print(f"  {attempt:<26} {time.perf_counter() - start:6.2f} s, {result.pushed_layers} layers pushed "
                      f"({result.pushed_bytes / 2**20:.2f} MiB uncompressed), {result.reused_layers} reused")
        finally:
            stop_process(registry_process)
            for image in built:
                docker.images.remove(image.id, force=True)


if __name__ == "__main__":
    main()
