"""Publishing on the real engine to the real loopback registries (open and htpasswd), and archives."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import uuid

import pytest

import edgebench as eb
from edgebench.publish.registry import RegistryClient

from ..helpers import derived_image, tool

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def tested(engine, built, image_store):
    report = eb.test_image(built, store=image_store, client=engine)
    assert report.passed, report.summary()
    return built


def test_push_by_digest_under_every_tag_and_read_back(engine, tested, image_store, registries):
    result = eb.publish(tested, f"{registries['open']}/edge/digits-rf", ["1", "latest"], store=image_store,
                        client=engine)
    assert result.verified and result.tags == ["1", "latest"] and result.digest.startswith("sha256:")
    print(f"\npush to {registries['open']}: {result.pushed_layers} layers pushed ({result.pushed_bytes / 2**20:.1f} "
          f"MiB uncompressed), {result.reused_layers} reused, {result.seconds:.2f} s")
    registry = RegistryClient(registries["open"])
    assert sorted(registry.tags("edge/digits-rf")) == ["1", "latest"]
    for tag in ("1", "latest"):
        digest, manifest = registry.manifest("edge/digits-rf", tag)
        assert digest == result.digest and manifest["config"]["digest"] == tested.id
    run = image_store.runs("digits-rf", step="publish")[0]
    test_run = image_store.runs("digits-rf", step="test")[0]
    assert run.status == "passed" and run.outputs["test_run"] == test_run.id and run.outputs["forced"] is False
    assert f"{registries['open']}/edge/digits-rf@{result.digest}" in result.references


def test_second_push_after_a_model_only_change_sends_only_the_model_layer(engine, tested, image_store, registries,
                                                                          digits):
    from sklearn.tree import DecisionTreeClassifier

    destination = f"{registries['open']}/edge/digits-two"
    first = eb.publish(tested, destination, ["1"], store=image_store, client=engine)
    x, y = digits
    card = eb.export_model(DecisionTreeClassifier(max_depth=6, random_state=0).fit(x, y), x[:20], "digits-rf",
                           store=image_store)
    image = eb.build_image(card.ref, store=image_store, client=engine)
    try:
        assert eb.test_image(image, store=image_store, client=engine).passed
        second = eb.publish(image, destination, [str(card.version)], store=image_store, client=engine)
    finally:
        engine.images.remove(image.id, force=True)
    print(f"\nfirst push: {first.pushed_layers} layers, {first.pushed_bytes / 2**20:.1f} MiB, {first.seconds:.2f} s;"
          f" second push: {second.pushed_layers} layers, {second.pushed_bytes / 2**20:.2f} MiB, "
          f"{second.seconds:.2f} s, {second.reused_layers} reused")
    assert first.pushed_layers + first.reused_layers >= 4
    assert second.pushed_layers == 1 and second.reused_layers >= 3
    assert second.pushed_bytes < tested.size_bytes / 10


def test_auth_registry_with_credentials_from_the_environment_leaves_no_secret(engine, tested, image_store,
                                                                              registries, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEBENCH_REGISTRY_USERNAME", registries["user"])
    monkeypatch.setenv("EDGEBENCH_REGISTRY_PASSWORD", registries["password"])
    result = eb.publish(tested, f"{registries['auth']}/edge/digits-rf", ["1"], store=image_store, client=engine,
                        pull_back=True)
    assert result.verified and result.pull_back is not None and result.pull_back.passed
    secret = registries["password"].encode()
    assert secret not in json.dumps(result.to_dict()).encode()
    for path in image_store.home.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), f"the registry password leaked into {path}"


def test_wrong_credentials_push_nothing(engine, tested, image_store, registries):
    with pytest.raises(eb.PublishError) as err:
        eb.publish(tested, f"{registries['auth']}/edge/wrong-creds", ["1"], store=image_store, client=engine,
                   credentials=eb.Credentials(registries["user"], "not-the-password"))
    assert f"registry {registries['auth']} refused user '{registries['user']}'" in str(err.value)
    assert "nothing was pushed" in str(err.value)
    admin = RegistryClient(registries["auth"], eb.Credentials(registries["user"], registries["password"]))
    assert admin.tags("edge/wrong-creds") == []


def test_registry_unreachable(engine, tested, image_store):
    with pytest.raises(eb.PublishError, match="registry 127.0.0.1:1 is unreachable"):
        eb.publish(tested, "127.0.0.1:1/edge/digits-rf", store=image_store, client=engine)


def test_bad_tag_and_missing_repository(engine, tested, image_store, registries):
    with pytest.raises(eb.InvalidInputError, match="tag 'no spaces please' is not valid"):
        eb.publish(tested, f"{registries['open']}/edge/x", ["no spaces please"], store=image_store, client=engine)
    with pytest.raises(eb.InvalidInputError, match="has no repository"):
        eb.publish(tested, registries["open"], store=image_store, client=engine)


def test_image_not_built(engine, image_store, registries):
    with pytest.raises(eb.PublishError, match="image 'edgebench/never-built:1-amd64' is not in the engine"):
        eb.publish("edgebench/never-built:1-amd64", f"{registries['open']}/edge/x", store=image_store, client=engine)


def test_failed_or_missing_test_refuses_unless_forced(engine, built, image_store, registries):
    tag = derived_image(engine, built.id, "edgebench-test/gate:1", "ENV EDGEBENCH_MODEL_DIR=/nowhere")
    repository = f"{registries['open']}/edge/gate-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(eb.PublishError, match="has not been tested"):
            eb.publish(tag, repository, store=image_store, client=engine)
        assert not eb.test_image(tag, store=image_store, client=engine, timeout=20).passed
        with pytest.raises(eb.PublishError) as err:
            eb.publish(tag, repository, store=image_store, client=engine)
        assert "the last test of image" in str(err.value) and "start: container exited" in str(err.value)
        assert RegistryClient(registries["open"]).tags(repository.split("/", 1)[1]) == []
        forced = eb.publish(tag, repository, ["forced"], force=True, store=image_store,
                            client=engine)
        assert forced.forced and forced.verified
        assert image_store.runs("digits-rf", step="publish")[0].inputs["force"] is True
    finally:
        engine.images.remove(tag, force=True)


class Proxy:
    """A TCP proxy to the registry that can 'lose' it mid-upload: existing connections are cut and new ones
    get 503 Service Unavailable, as from a load balancer whose backend went away. (The engine retries a failed
    layer upload five times, 5 to 20 s apart, so the failing push takes about 50 s.)"""

    def __init__(self, upstream: str, cut_after_bytes: int | None) -> None:
        self.host, self.port_up = upstream.split(":")[0], int(upstream.split(":")[1])
        self.cut_after = cut_after_bytes
        self.sent = 0
        self.gone = False
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.gone:
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                client.close()
                continue
            upstream = socket.create_connection((self.host, self.port_up))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, upload: bool) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
                if upload:
                    self.sent += len(data)
                    if self.cut_after is not None and self.sent > self.cut_after and not self.gone:
                        self.gone = True
                        for s in self.sockets:
                            s.close()
                        return
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


class CutAt:
    """A progress that makes the registry behind ``proxy`` go away when a step message starts with ``prefix``."""

    def __init__(self, proxy, prefix):
        self.proxy, self.prefix = proxy, prefix

    def step(self, done, total, message):
        if message.startswith(self.prefix):
            self.proxy.gone = True

    def log(self, line):
        pass

    def close(self):
        pass


def test_registry_that_goes_away_mid_push_then_a_retry_completes(engine, built, image_store, registries):
    import os

    # a layer the registry has never seen, so that megabytes really cross the proxy
    tag = derived_image(engine, built.id, "edgebench-test/interrupted:1", "COPY noise.bin /opt/noise.bin",
                        files={"noise.bin": os.urandom(12 * 2**20)})
    image_id = engine.images.get(tag).id
    repository = f"edge/interrupted-{image_id[7:19]}"
    proxy = Proxy(registries["open"], cut_after_bytes=4 * 2**20)
    try:
        with pytest.raises(eb.PublishError) as err:
            eb.publish(tag, f"127.0.0.1:{proxy.port}/{repository}", ["1"], force=True, store=image_store,
                       client=engine)
        assert "push of" in str(err.value) and "failed" in str(err.value)
        assert "No tag points at a partial upload" in str(err.value)
        direct = RegistryClient(registries["open"])
        assert direct.tags(repository) == []  # no tag for the partial upload
        healthy = Proxy(registries["open"], cut_after_bytes=None)
        try:
            result = eb.publish(tag, f"127.0.0.1:{healthy.port}/{repository}", ["1"], force=True,
                                store=image_store, client=engine)
        finally:
            healthy.close()
        assert result.verified and result.pushed_layers >= 1
        assert direct.manifest(repository, "1")[1]["config"]["digest"] == image_id
    finally:
        proxy.close()
        engine.images.remove(image_id, force=True)


def test_archive_is_an_oci_layout_and_a_docker_archive_that_loads_with_the_same_digest(engine, built, image_store,
                                                                                        tmp_path):
    tag = derived_image(engine, built.id, "edgebench-test/offline:1", 'LABEL org.example.site="plant-7"')
    image_id = engine.images.get(tag).id
    archive = tmp_path / "digits-rf.tar"
    try:
        result = eb.publish(tag, f"oci-archive:{archive}", force=True, store=image_store, client=engine)
    finally:
        engine.images.remove(tag, force=True)
    assert result.image_id == image_id and archive.stat().st_size == result.pushed_bytes
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert {"oci-layout", "index.json", "manifest.json"} <= names
        index = json.load(tar.extractfile("index.json"))
        manifest_blob = "blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(manifest_blob))
        assert manifest["config"]["digest"] == image_id
        for layer in manifest["layers"][:2]:
            data = tar.extractfile("blobs/sha256/" + layer["digest"].split(":")[1]).read()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
    check_with_skopeo(archive, image_id, tmp_path)
    done = subprocess.run([sys.executable, "-m", "edgebench", "load", str(archive), "--json"], capture_output=True,
                          text=True, timeout=300)
    try:
        assert done.returncode == 0, done.stderr
        loaded = json.loads(done.stdout)
        assert loaded["image_id"] == image_id and "edgebench-test/offline:1" in loaded["tags"]
        assert loaded["model"] == "digits-rf:1"
    finally:
        engine.images.remove(image_id, force=True)


def test_load_of_a_file_that_is_not_an_archive(tmp_path, engine):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"definitely not a tar file")
    with pytest.raises(eb.PublishError, match="is not an image archive"):
        eb.load_archive(junk, client=engine)
    with pytest.raises(eb.InvalidInputError, match="archive not found"):
        eb.load_archive(tmp_path / "missing.tar", client=engine)


def test_cli_publish_needs_exactly_one_destination(tested, image_store):
    done = subprocess.run([sys.executable, "-m", "edgebench", "--home", str(image_store.home), "publish",
                           tested.tags[0]], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "give either REGISTRY/REPOSITORY or --to oci-archive:FILE.tar" in done.stderr


def check_with_skopeo(archive, image_id, tmp_path):
    """A reader that is not ours: skopeo reads the archive, checks every blob against its digest as it copies,
    and refuses the same archive with one byte of a layer changed."""
    import shutil

    skopeo = tool("skopeo", "scripts/services.sh installs Debian's skopeo")
    ref = f"oci-archive:{archive}"
    manifest = json.loads(subprocess.run([skopeo, "inspect", "--raw", ref], capture_output=True, text=True,
                                         check=True).stdout)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} <= {
        "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip"}
    assert manifest["config"]["digest"] == image_id
    config = json.loads(subprocess.run([skopeo, "inspect", "--config", "--raw", ref], capture_output=True,
                                       text=True, check=True).stdout)
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    copied = subprocess.run([skopeo, "copy", "--quiet", ref, f"dir:{tmp_path / 'copy'}"], capture_output=True,
                            text=True)
    assert copied.returncode == 0, copied.stderr
    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    # one byte changed in the smallest layer: skopeo must refuse it
    smallest = min(manifest["layers"], key=lambda layer: layer["size"])["digest"].split(":")[1]
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(archive) as source, tarfile.open(tampered, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name == f"blobs/sha256/{smallest}":
                data = bytes([data[0] ^ 1]) + data[1:]
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    refused = subprocess.run([skopeo, "copy", "--quiet", f"oci-archive:{tampered}", f"dir:{tmp_path / 'bad'}"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "digest" in refused.stderr.lower(), refused.stderr
    shutil.rmtree(tmp_path / "copy", ignore_errors=True)


# -- where credentials come from, and the token flow -------------------------------------------------------------


def test_token_auth_registry_push_and_read_back_through_bearer_tokens(engine, tested, image_store, token_registry):
    registry = token_registry["registry"]
    creds = eb.Credentials(token_registry["user"], token_registry["password"])
    result = eb.publish(tested, f"{registry}/edge/digits-rf", ["1", "stable"], credentials=creds,
                        store=image_store, client=engine)
    assert result.verified and result.tags == ["1", "stable"]
    scopes = {s for request in token_registry["tokens"] if request["authorized"] for s in request["scope"]}
    assert scopes & {"repository:edge/digits-rf:pull,push", "repository:edge/digits-rf:push,pull"}, scopes
    reader = RegistryClient(registry, creds)
    assert reader.manifest("edge/digits-rf", "stable")[0] == result.digest  # our client, through its own token
    assert reader.token is not None
    anonymous = RegistryClient(registry)
    with pytest.raises(eb.PublishError, match="refused anonymous access"):
        anonymous.ping()


def test_token_auth_registry_with_a_wrong_password_pushes_nothing(engine, tested, image_store, token_registry):
    registry = token_registry["registry"]
    with pytest.raises(eb.PublishError) as err:
        eb.publish(tested, f"{registry}/edge/refused", ["1"], store=image_store, client=engine,
                   credentials=eb.Credentials(token_registry["user"], "wrong"))
    assert f"registry {registry} refused user 'token-user' (its token service answered HTTP 401)" in str(err.value)
    assert "nothing was pushed" in str(err.value)
    reader = RegistryClient(registry, eb.Credentials(token_registry["user"], token_registry["password"]))
    assert reader.tags("edge/refused") == []


def docker_config(folder, registry, **config):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_credentials_from_docker_login(engine, tested, image_store, registries, monkeypatch, tmp_path):
    auth = base64.b64encode(f"{registries['user']}:{registries['password']}".encode()).decode()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "docker", registries["auth"],
                                                          auths={registries["auth"]: {"auth": auth}})))
    result = eb.publish(tested, f"{registries['auth']}/edge/from-login", ["1"], store=image_store, client=engine)
    assert result.verified


def credential_helper(folder, name, script):
    helper = folder / f"docker-credential-{name}"
    helper.write_text("#!/bin/sh\n" + script)
    helper.chmod(0o755)
    return folder


def test_credentials_from_a_credential_helper(engine, tested, image_store, registries, monkeypatch, tmp_path):
    answer = json.dumps({"ServerURL": registries["auth"], "Username": registries["user"],
                         "Secret": registries["password"]})
    bin_dir = credential_helper(tmp_path, "edgebench-test", f"[ \"$1\" = get ] && cat >/dev/null && echo '{answer}'\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "docker", registries["auth"],
                                                          credHelpers={registries["auth"]: "edgebench-test"})))
    result = eb.publish(tested, f"{registries['auth']}/edge/from-helper", ["1"], store=image_store, client=engine)
    assert result.verified


def test_a_broken_credential_helper_is_said(engine, tested, image_store, registries, monkeypatch, tmp_path):
    bin_dir = credential_helper(tmp_path, "broken", "echo 'keychain is locked'; exit 1\n")  # helpers answer on stdout
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "docker", registries["auth"],
                                                          credHelpers={registries["auth"]: "broken"})))
    with pytest.raises(eb.PublishError) as err:
        eb.publish(tested, f"{registries['auth']}/edge/x", ["1"], store=image_store, client=engine)
    assert f"the docker credential helper docker-credential-broken failed for {registries['auth']}" in str(err.value)
    assert "keychain is locked" in str(err.value)
