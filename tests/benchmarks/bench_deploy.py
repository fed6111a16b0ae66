"""Deploy benchmark: rendering the GitOps repository for 100 sites next to kustomize building those sites, the time
to promote each of three waves (gate with cosign verification, render, record, commit), and a disconnected site's
bundle size over the image's, measured in one run.

Needs a Docker Engine, cosign, kustomize, Debian's docker-registry and the offline base (scripts/services.sh start).
Run from the repository root: .venv/bin/python -m tests.benchmarks.bench_deploy
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

import edgebench as eb
from edgebench import config
from edgebench.deploy import gitops, promote, status_file_health
from edgebench.deploy.render import Release, render
from edgebench.deploy.sites import parse_sites
from edgebench.engine import docker_client
from edgebench.progress import Silent
from tests.helpers import fresh_registry, stop_process

PROFILES = ("rpi4-1gb", "rpi5-4gb", "jetson-orin-nano", "rk3588", "intel-n100")
TARGETS = ("kubernetes", "kubernetes", "kserve", "quadlet")


def sites_document(hub: str, count: int, waves: int) -> dict:
    return {"hub": hub, "sites": [
        {"name": f"site-{i:03d}", "profile": PROFILES[i % len(PROFILES)], "wave": i * waves // count,
         "target": TARGETS[i % len(TARGETS)], "endpoint": f"http://site-{i:03d}.invalid:8080"}
        for i in range(count)]}


def main() -> None:
    os.environ.setdefault("COSIGN_PASSWORD", "benchmark")
    kustomize = config.tool("kustomize")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        hub_demo = "registry.example.com/edge/digits-rf"
        sites = parse_sites(sites_document(hub_demo, 100, 3), "100 sites")
        release = Release("digits-rf:1", "cd" * 32, hub_demo, "sha256:" + "ab" * 32,
                          {"amd64": "sha256:" + "01" * 32, "arm64": "sha256:" + "02" * 32}, 96.0, {"amd64": 1.5})
        start = time.perf_counter()
        for _ in range(5):
            files = render(sites, {s.name: release for s in sites.sites})
        rendering = (time.perf_counter() - start) / 5
        repo = tmp / "rendered"
        gitops.write(repo, files)
        start = time.perf_counter()
        built = 0
        for site in sites.sites:
            if site.target != "quadlet":
                subprocess.run([kustomize, "build", str(repo / "sites" / site.name)], capture_output=True, check=True)
                built += 1
        building = time.perf_counter() - start
        print(f"render 100 sites ({len(files)} files, {sum(len(t) for t in files.values()) / 1024:.0f} KiB): "
              f"{rendering * 1000:.0f} ms ({rendering * 10:.1f} ms per site); kustomize build of the {built} cluster "
              f"sites: {building:.1f} s ({building / rendering:.0f}x the render)")

        docker = docker_client()
        store = eb.Store(tmp / "store")
        keys = eb.generate_keys(tmp / "keys")
        registry_process, registry = fresh_registry(tmp)
        images = []
        try:
            x, y = load_digits(return_X_y=True)
            eb.export_model(RandomForestClassifier(100, random_state=0).fit(x, y), x[:200], "digits-rf",
                            store=store)
            for platform in ("linux/amd64", "linux/arm64"):
                image = eb.build_image("digits-rf", platform, store=store, client=docker, progress=Silent())
                images.append(image)
                assert eb.test_image(image, store=store, client=docker, progress=Silent()).passed
            hub = f"{registry}/edge/digits-rf"
            published = eb.publish(images, hub, ["1"], sign=keys["private"], store=store, client=docker,
                                   progress=Silent())
            document = sites_document(hub, 100, 3)
            document["sites"][1].update(disconnected=True, target="quadlet")
            (tmp / "sites.yaml").write_text(yaml.safe_dump(document))
            repo = tmp / "gitops"
            repo.mkdir()
            subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
            (repo / "README.md").write_text("gitops\n")
            gitops.commit(repo, "start")
            report = tmp / "status.yaml"
            report.write_text(yaml.safe_dump({s["name"]: {"digest": published.digest, "ready": True}
                                              for s in document["sites"]}))
            for wave in range(3):
                start = time.perf_counter()
                done = promote(f"{hub}@{published.digest}", tmp / "sites.yaml", repo, wave, key=keys["public"],
                               health=status_file_health(report), store=store)
                assert done.passed, done.summary()
                print(f"promote wave {wave} ({len(done.sites)} sites): {time.perf_counter() - start:.2f} s")
            made = eb.deploy.bundle("site-001", tmp / "sites.yaml", repo, tmp / "site-001.tar", store=store)
            print(f"bundle for a disconnected site: {made['bytes'] / 2**20:.1f} MiB, the images it holds "
                  f"{made['image_bytes'] / 2**20:.1f} MiB (x{made['bytes'] / made['image_bytes']:.3f}), "
                  f"{len(made['manifests'])} manifest files")
        finally:
            stop_process(registry_process)
            for image in images:
                docker.images.remove(image.id, force=True)


if __name__ == "__main__":
    main()
