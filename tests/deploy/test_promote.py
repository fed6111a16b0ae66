"""Promotion end to end on this machine: publish and sign to a hub registry, promote wave 0 (gate, one commit, the
digest copied with its signatures to a second registry standing in for the site's mirror), the Docker Engine pulls
it by digest from the mirror and runs it under the site's device limits, the site answers ready, and only then wave
1 can be promoted; a disconnected site's bundle is verified, loaded and run the same way; rollback, status, and
every way the gate and the repository refuse."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import yaml

import edgebench as eb
from edgebench.deploy import gitops, promote, rollback, status, status_file_health
from edgebench.engine import run_limited
from edgebench.image.tester import _wait_ready, free_port
from edgebench.publish.registry import RegistryClient

from ..helpers import fresh_registry, stop_process

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def world(tmp_path_factory, engine, registries, signing_keys, digits):
    """A store with digits-rf:1 built for amd64 and arm64, tested, published as one signed index to the hub;
    a mirror registry; sites.yaml; a GitOps repository cloned from a bare remote."""
    import os

    from sklearn.ensemble import RandomForestClassifier

    from ..conftest import SIGNING_PASSWORD

    os.environ["COSIGN_PASSWORD"] = SIGNING_PASSWORD
    tmp = tmp_path_factory.mktemp("deploy")
    store = eb.Store(tmp / "store")
    x, y = digits
    eb.export_model(RandomForestClassifier(20, random_state=0).fit(x, y), x[:20], "digits-rf", store=store)
    images = [eb.build_image("digits-rf", p, store=store, client=engine) for p in ("linux/amd64", "linux/arm64")]
    for image in images:
        assert eb.test_image(image, memory="512m", store=store, client=engine).passed
    hub = f"{registries['open']}/hub-{uuid.uuid4().hex[:6]}/digits-rf"
    published = eb.publish(images, hub, ["1"], sign=signing_keys["private"], store=store, client=engine)
    mirror_folder = tmp / "mirror"
    mirror_folder.mkdir()
    mirror_process, mirror = fresh_registry(mirror_folder)
    port = free_port()
    sites = tmp / "sites.yaml"
    sites.write_text(yaml.safe_dump({"hub": hub, "sites": [
        {"name": "plant-7", "profile": "intel-n100", "wave": 0, "target": "kubernetes",
         "mirror": f"{mirror}/edge/digits-rf", "endpoint": f"http://127.0.0.1:{port}"},
        {"name": "depot-3", "profile": "rpi4-1gb", "wave": 1, "target": "quadlet", "disconnected": True},
    ]}))
    remote = tmp / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    repo = tmp / "gitops"
    subprocess.run(["git", "clone", "-q", str(remote), str(repo)], check=True, capture_output=True)
    (repo / "README.md").write_text("GitOps for the edge sites\n")
    gitops.commit(repo, "start")
    yield {"store": store, "hub": hub, "published": published, "mirror": mirror, "port": port, "sites": sites,
           "repo": repo, "remote": remote, "images": images, "tmp": tmp}
    del os.environ["COSIGN_PASSWORD"]
    stop_process(mirror_process)
    for image in images:
        engine.images.remove(image.id, force=True)


def commits(repo):
    return int(subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"], capture_output=True,
                              text=True, check=True).stdout)


def run_site(engine, reference, port, memory_mb):
    """The site stand-in: the engine runs what the site pulled, under the device's RAM."""
    container = run_limited(engine, reference, memory=int(memory_mb * 2**20), cpuset="0", network="host",
                            name=f"edgebench-site-{uuid.uuid4().hex[:8]}", labels={"org.edgebench.test": "site"},
                            environment={"EDGEBENCH_PORT": str(port)})
    ready, message = _wait_ready(container, port, 60, f"{memory_mb}m")
    assert ready, message
    return container


def test_the_gate_refuses_and_nothing_is_committed(world, signing_keys, engine):
    store, repo, sites, hub = world["store"], world["repo"], world["sites"], world["hub"]
    digest = world["published"].digest
    before = commits(repo)
    with pytest.raises(eb.DeployError, match="is a tag: promote a digest"):
        promote(f"{hub}:1", sites, repo, 0, key=signing_keys["public"], store=store)
    with pytest.raises(eb.DeployError, match="is not a digest edgebench published"):
        promote(f"{hub}@sha256:{'0' * 64}", sites, repo, 0, key=signing_keys["public"], store=store)
    unsigned = promote(f"{hub}@{digest}", sites, repo, 0, store=store)
    assert not unsigned.passed and "give the public key" in unsigned.summary()
    other = eb.generate_keys(world["tmp"] / "other-keys")
    wrong = promote(f"digits-rf@{digest}", sites, repo, 0, key=other["public"], store=store)
    assert not wrong.passed and [c.name for c in wrong.gate if not c.passed] == ["signed"]
    early = promote(f"{hub}@{digest}", sites, repo, 1, key=signing_keys["public"], store=store)
    assert not early.passed and "wave 0 plant-7" in early.summary() and "promote wave 0 first" in early.summary()
    assert commits(repo) == before and not (repo / "sites").exists()


def test_an_architecture_no_test_covers_is_refused(world, signing_keys, engine):
    store, repo, sites, hub = world["store"], world["repo"], world["sites"], world["hub"]
    amd64_only = eb.publish(world["images"][0], f"{hub}-amd64", ["1"], sign=signing_keys["private"], store=store,
                            client=engine)
    narrow = world["tmp"] / "narrow.yaml"
    data = yaml.safe_load(sites.read_text())
    data["hub"] = f"{hub}-amd64"
    data["sites"][0].update(profile="rpi4-1gb")  # an arm64 board: the amd64-only digest holds nothing for it
    narrow.write_text(yaml.safe_dump(data))
    done = promote(f"{hub}-amd64@{amd64_only.digest}", narrow, repo, 0, key=signing_keys["public"], store=store)
    failed = {c.name: c.message for c in done.gate if not c.passed}
    assert failed == {"image test linux/arm64 within rpi4-1gb": "the digest holds no linux/arm64 image"}


def test_promote_wave_0_then_the_site_runs_it_then_wave_1(world, signing_keys, engine):
    store, repo, sites, hub, mirror = world["store"], world["repo"], world["sites"], world["hub"], world["mirror"]
    digest = world["published"].digest
    done = promote(f"digits-rf@{digest}", sites, repo, 0, key=signing_keys["public"], store=store)
    assert done.passed, done.summary()
    assert done.sites == {"plant-7": {"from": None, "to": digest}}
    log = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%s"], capture_output=True, text=True).stdout
    assert log.startswith(f"edgebench: promote digits-rf:1 {digest[:19]} to wave 0 (plant-7)")
    remote_head = subprocess.run(["git", "-C", str(world["remote"]), "rev-parse", "main"], capture_output=True,
                                 text=True).stdout.strip()
    assert remote_head == done.commit  # pushed
    record = gitops.releases(repo)[-1]
    assert record["action"] == "promote" and record["digest"] == digest and set(record["platforms"]) == {
        "amd64", "arm64"}
    assert set(record["image_tests"]) == {"amd64", "arm64"} and digest in record["signatures"]
    assert "depot-3" not in gitops.pins(repo, eb.deploy.load_sites(sites))  # wave 1 untouched
    # the mirror received the digest with its signatures: the site can verify without the hub
    assert RegistryClient(mirror).manifest("edge/digits-rf", digest)[0] == digest
    assert eb.verify(f"{mirror}/edge/digits-rf@{digest}", signing_keys["public"]).passed

    not_yet = promote(f"digits-rf@{digest}", sites, repo, 1, key=signing_keys["public"], store=store)
    assert not not_yet.passed and "does not answer" in not_yet.summary()

    pulled = engine.images.pull(f"{mirror}/edge/digits-rf@{digest}")  # the engine picks the amd64 image
    assert pulled.id == world["images"][0].id
    site = eb.deploy.load_sites(sites).site("plant-7")
    report = eb.test_image(f"{mirror}/edge/digits-rf@{digest}", memory=f"{int(site.profile.usable_ram_mb)}m",
                           cpuset="0", store=store, client=engine)
    assert report.passed, report.summary()
    container = run_site(engine, f"{mirror}/edge/digits-rf@{digest}", world["port"], site.profile.usable_ram_mb)
    try:
        states = {s.site: s for s in status(sites, repo, store=store)}
        assert states["plant-7"].healthy and states["plant-7"].desired == digest
        assert states["depot-3"].answer == "not promoted yet"
        done = promote(f"digits-rf@{digest}", sites, repo, 1, key=signing_keys["public"], store=store)
        assert done.passed, done.summary()
        assert [c.name for c in done.gate][-1] == "wave 0 plant-7" and done.gate[-1].passed
    finally:
        container.remove(force=True)
    unit = (repo / "sites" / "depot-3" / "digits-rf.container").read_text()
    assert f"Image={hub}@{digest}" in unit and "Pull=never" in unit


def test_a_disconnected_site_bundle_is_verified_loaded_and_run(world, signing_keys, engine):
    store, repo, sites = world["store"], world["repo"], world["sites"]
    out = world["tmp"] / "depot-3.tar"
    done = subprocess.run([sys.executable, "-m", "edgebench", "--home", str(store.home), "deploy", "bundle",
                           "digits-rf", "--site", "depot-3", "--sites", str(sites), "--repo", str(repo), "--out",
                           str(out), "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert "manifests/sites/depot-3/digits-rf.container" in made["manifests"]
    assert made["bytes"] < 1.2 * made["image_bytes"]  # two platforms' images, their signatures, the manifests
    loaded = eb.load_verified(out, signing_keys["public"], platform="linux/arm64", client=engine)  # a Pi 4
    assert loaded.verification.passed and loaded.loaded.platform == "linux/arm64"
    site = eb.deploy.load_sites(sites).site("depot-3")
    report = eb.test_image(loaded.loaded.image_id, memory=f"{int(site.profile.usable_ram_mb)}m", store=store,
                           client=engine)
    assert report.passed and report.emulated, report.summary()


def test_status_file_health_and_rollback(world, signing_keys, engine, digits):
    from sklearn.ensemble import RandomForestClassifier

    store, repo, sites, hub = world["store"], world["repo"], world["sites"], world["hub"]
    first = world["published"].digest
    with pytest.raises(eb.DeployError, match="has no previous release to roll back to"):
        rollback(sites, repo, 0, store=store)
    x, y = digits
    eb.export_model(RandomForestClassifier(30, random_state=1).fit(x, y), x[:20], "digits-rf", store=store)
    image = eb.build_image("digits-rf:2", "linux/amd64", store=store, client=engine)
    try:
        assert eb.test_image(image, store=store, client=engine).passed
        second = eb.publish(image, hub, ["2"], sign=signing_keys["private"], store=store, client=engine)
        narrow = world["tmp"] / "amd64-only.yaml"
        data = yaml.safe_load(sites.read_text())
        data["sites"] = data["sites"][:1]
        narrow.write_text(yaml.safe_dump(data))
        done = promote(f"{hub}@{second.digest}", narrow, repo, 0, key=signing_keys["public"], store=store)
        assert done.passed and done.sites["plant-7"] == {"from": first, "to": second.digest}
        report = world["tmp"] / "status.yaml"
        report.write_text(yaml.safe_dump({"plant-7": {"digest": second.digest, "ready": False}}))
        health = status_file_health(report)
        ok, why = health(eb.deploy.load_sites(narrow).site("plant-7"), eb.deploy.release_of(
            store, f"{hub}@{second.digest}"))
        assert not ok and "says plant-7 is not ready" in why
        back = rollback(narrow, repo, 0, store=store)
        assert back.passed and back.sites["plant-7"] == {"from": second.digest, "to": first}
        assert gitops.pins(repo, eb.deploy.load_sites(narrow))["plant-7"] == first
        assert gitops.releases(repo)[-1]["action"] == "rollback"
    finally:
        engine.images.remove(image.id, force=True)


def test_uncommitted_changes_or_a_remote_that_moved_on_are_refused(world, signing_keys):
    store, repo, sites, hub = world["store"], world["repo"], world["sites"], world["hub"]
    (repo / "notes.txt").write_text("work in progress\n")
    with pytest.raises(eb.DeployError, match="has uncommitted changes .* edgebench overwrites nothing"):
        promote(f"{hub}@{world['published'].digest}", sites, repo, 0, key=signing_keys["public"], store=store)
    (repo / "notes.txt").unlink()
    other = world["tmp"] / "other-clone"
    subprocess.run(["git", "clone", "-q", str(world["remote"]), str(other)], check=True, capture_output=True)
    (other / "CHANGES.md").write_text("someone else's commit\n")
    gitops.commit(other, "someone else")
    with pytest.raises(eb.DeployError, match="remote .* has commits this clone does not have: pull"):
        promote(f"{hub}@{world['published'].digest}", sites, repo, 0, key=signing_keys["public"], store=store)
    subprocess.run(["git", "-C", str(repo), "pull", "-q", "--rebase"], check=True, capture_output=True)


def test_the_workbench_shows_sites_and_promotes(world, signing_keys):
    store, repo, sites = world["store"], world["repo"], world["sites"]
    bench = eb.Workbench("digits-rf:1", store=store, sites=str(sites), repo=str(repo))
    assert "plant-7" in bench.sites_table.value and "depot-3" in bench.sites_table.value
    bench.wave.value = 0
    refused = bench.run("promote")  # no public key: the gate says so, nothing committed
    assert isinstance(refused, eb.DeployError) and "give the public key" in str(refused)
    bench.public_key.value = signing_keys["public"]
    before = commits(repo)
    done = bench.run("promote")
    assert done.passed and commits(repo) == before + 1
    assert done.digest[:19] in bench.sites_table.value


def test_the_rest_api_lists_sites_and_refuses_an_unpublished_promotion(world, monkeypatch):
    from edgebench.server.runs import RunManager

    monkeypatch.setenv("EDGEBENCH_SITES", str(world["sites"]))
    monkeypatch.setenv("EDGEBENCH_GITOPS", str(world["repo"]))
    manager = RunManager(world["store"])
    command = manager._command("digits-rf:1", "promote", {"wave": 0, "key": "keys/cosign.pub"})
    assert command[-11:] == ["promote", "digits-rf:1", "--sites", str(world["sites"]), "--repo", str(world["repo"]),
                             "--wave", "0", "--key", "keys/cosign.pub", "--json"]
    with pytest.raises(eb.InvalidInputError, match="wave must be a whole number >= 0"):
        manager._command("digits-rf:1", "promote", {"wave": -1})
