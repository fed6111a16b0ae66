"""A real board measured over SSH: Debian's openssh-server on loopback with key authentication in front of the
local engine stands in for the board (an arm64 run there is emulated and labelled so: it tests the path, not the
timing)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import edgebench as eb
from edgebench.image.tester import free_port

from ..helpers import stop_process, tool


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def board(tmp_path_factory, engine):
    """sshd on 127.0.0.1 (root, key only) whose forwarded socket is the local engine's."""
    sshd = tool("sshd", "scripts/services.sh installs Debian's openssh-server")
    folder = tmp_path_factory.mktemp("board")
    host_key, user_key, wrong_key = (keygen(folder / n) for n in ("host_key", "user_key", "wrong_key"))
    (folder / "authorized_keys").write_text(Path(f"{user_key}.pub").read_text())
    port = free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {folder}/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nPidFile {folder}/sshd.pid\nAllowStreamLocalForwarding yes\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")], stderr=subprocess.PIPE,
                               text=True)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.1)
    engine_socket = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    yield {"url": f"ssh://root@127.0.0.1:{port}?socket={engine_socket}", "port": port, "key": str(user_key),
           "wrong": str(wrong_key), "socket": engine_socket}
    stop_process(process)


@pytest.fixture
def known_hosts(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_KNOWN_HOSTS", str(tmp_path / "known_hosts"))


@pytest.fixture
def cnn(store, tmp_path):
    import numpy as np

    from .test_costs import graph

    graph(tmp_path / "cnn.onnx")
    return eb.import_onnx(str(tmp_path / "cnn.onnx"), np.random.default_rng(0).normal(size=(1, 16, 32, 32)), "cnn",
                          store=store)


@pytest.mark.docker
def test_a_board_over_ssh_is_measured_labelled_stored_and_re_anchors_the_profile(board, known_hosts, cnn, store):
    report = eb.benchmark(cnn.ref, ["intel-n100"], eb.SLO(p99_ms=1000), seconds=0.5, store=store,
                          remote=board["url"], ssh_key=board["key"])
    (device,) = report.devices
    measured = device.measured_on_device
    assert measured["board"] == f"root@127.0.0.1:{board['port']}" and not measured["emulated"]
    assert measured["p50_ms"] > 0 and measured["p99_ms"] >= measured["p50_ms"] and measured["peak_memory_mb"] > 0
    assert any(r.startswith(f"measured on root@127.0.0.1:{board['port']}: p50 ") for r in device.reasons)
    assert device.verdict == "pass"
    (run,) = store.runs("cnn", step="bench")
    assert run.inputs["remote"] == board["url"] and run.outputs["devices"][0]["measured_on_device"]["p50_ms"]
    again = eb.benchmark(cnn.ref, ["intel-n100"], seconds=0.3, store=store).devices[0]
    factor = measured["p50_ms"] / measured["predicted_p50_ms"]
    assert f"re-anchored on cnn:1 measured on root@127.0.0.1:{board['port']} (x{factor:.2f}" in again.reasons[-1]


@pytest.mark.docker
def test_a_board_of_another_architecture_is_refused_or_run_emulated_and_said(board, known_hosts, cnn, store):
    with pytest.raises(eb.BenchError, match=r"the board at 127.0.0.1 is amd64, but profile rpi4-1gb is arm64: "
                                            r"measure it with the profile of that board"):
        eb.benchmark(cnn.ref, ["rpi4-1gb"], seconds=0.3, store=store, remote=board["url"], ssh_key=board["key"])
    from edgebench import config
    from edgebench.emulation import emulation

    if not emulation("arm64").usable:
        why = f"arm64 emulation is not usable here: {emulation('arm64').explain()}"
        pytest.fail(f"CI=true and {why}") if config.in_ci() else pytest.skip(why)
    device = eb.benchmark(cnn.ref, ["rpi4-1gb"], seconds=0.3, store=store, remote=board["url"],
                          ssh_key=board["key"], allow_emulated=True).devices[0]
    assert device.measured_on_device["emulated"] and "p50_ms" not in device.measured_on_device
    assert any("under emulation: the path and the memory fit are checked" in r for r in device.reasons)


@pytest.mark.docker
@pytest.mark.parametrize(("change", "message"), [
    (lambda b: {"remote": "ssh://root@127.0.0.1:1", "ssh_key": b["key"]},
     r"cannot reach root@127.0.0.1:1 over SSH: .*Connection refused"),
    (lambda b: {"remote": b["url"], "ssh_key": b["wrong"]},
     r"root@127.0.0.1:\d+ refused the key .*wrong_key: add its public key to ~root/.ssh/authorized_keys"),
    (lambda b: {"remote": b["url"].split("?")[0] + "?socket=/nonexistent/docker.sock", "ssh_key": b["key"]},
     r"no Docker Engine answers on 127.0.0.1 at /nonexistent/docker.sock: install docker.io on the board"),
])
def test_ssh_failures_say_what_to_fix(board, known_hosts, cnn, store, change, message):
    with pytest.raises(eb.BenchError, match=message):
        eb.benchmark(cnn.ref, ["intel-n100"], seconds=0.3, store=store, **change(board))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"remote": "pi@board"}, r"remote 'pi@board' is not ssh://USER@HOST\[:PORT\]"),
    ({"remote": "ssh://root@127.0.0.1:2", "ssh_key": "/nonexistent/key"}, "SSH key not found: /nonexistent/key"),
    ({"remote": "ssh://root@127.0.0.1:2", "devices": ["rpi4-1gb", "intel-n100"]}, "--remote measures one board"),
])
def test_remote_arguments_are_checked_first(cnn, store, kwargs, message):
    devices = kwargs.pop("devices", ["intel-n100"])
    with pytest.raises((eb.InvalidInputError, eb.BenchError), match=message):
        eb.benchmark(cnn.ref, devices, seconds=0.3, store=store, **kwargs)
