"""A real board's Docker Engine over SSH: the system's ``ssh`` forwards the board's engine socket to a local one
(key authentication, no password prompts), and the docker SDK talks to it as to any engine. Nothing is installed
on the board beyond an engine and an SSH server.

``ssh://USER@HOST[:PORT][?socket=/var/run/docker.sock]``
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config
from ..core.errors import BenchError, InvalidInputError

DEFAULT_SOCKET = "/var/run/docker.sock"
CONNECT_S = 20


@dataclass(frozen=True)
class Remote:
    user: str
    host: str
    port: int
    socket: str

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def parse(url: str) -> Remote:
    """``ssh://USER@HOST[:PORT][?socket=PATH]``, checked."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme != "ssh" or not parts.hostname or not parts.username:
        raise InvalidInputError(f"remote {url!r} is not ssh://USER@HOST[:PORT]: the board's SSH login, e.g. "
                                "ssh://pi@192.168.1.20", remote=str(url))
    try:
        port = parts.port or 22
    except ValueError:
        raise InvalidInputError(f"remote {url!r} has a port that is not a number", remote=str(url)) from None
    socket = urllib.parse.parse_qs(parts.query).get("socket", [DEFAULT_SOCKET])[0]
    return Remote(parts.username, parts.hostname, port, socket)


@contextlib.contextmanager
def remote_engine(url: str, key: str | Path | None = None, timeout: float = CONNECT_S) -> Iterator[Any]:
    """A docker client for the board's engine, through an SSH forward that lives as long as the context."""
    import docker

    remote = parse(url)
    ssh = shutil.which("ssh")
    if ssh is None:
        raise BenchError("the ssh client is missing: apt-get install openssh-client")
    if key is not None and not Path(key).is_file():
        raise InvalidInputError(f"SSH key not found: {key}", path=str(key))
    folder = Path(tempfile.mkdtemp(prefix="edgebench-ssh-"))
    local = folder / "docker.sock"
    known = config.known_hosts()
    known.parent.mkdir(parents=True, exist_ok=True)
    command = [ssh, "-N", "-p", str(remote.port), "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
               "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known}",
               "-o", f"ConnectTimeout={int(timeout)}", "-o", "StreamLocalBindUnlink=yes",
               *(["-i", str(key), "-o", "IdentitiesOnly=yes"] if key else []),
               "-L", f"{local}:{remote.socket}", f"{remote.user}@{remote.host}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = None
    try:
        deadline = time.monotonic() + timeout
        while not local.exists():
            if process.poll() is not None:
                raise _ssh_error(remote, key, process.stderr.read() if process.stderr else "")
            if time.monotonic() > deadline:
                raise BenchError(f"SSH to {remote.where} did not connect in {timeout:g} s", remote=remote.where)
            time.sleep(0.05)
        try:  # the client asks the engine's API version when it is made: a missing engine fails here
            client = docker.DockerClient(base_url=f"unix://{local}", timeout=600)
            client.ping()
        except Exception:
            raise BenchError(f"no Docker Engine answers on {remote.host} at {remote.socket}: install docker.io on "
                             "the board (and add the SSH user to its docker group), or give "
                             "?socket=PATH", remote=remote.where) from None
        yield client
    finally:
        if client is not None:
            client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _ssh_error(remote: Remote, key: str | Path | None, stderr: str) -> BenchError:
    text = " ".join(line for line in stderr.strip().splitlines() if line and not line.startswith("Warning"))
    if "Permission denied" in text:
        which = f"the key {key}" if key else "your SSH keys"
        return BenchError(f"{remote.where} refused {which}: add its public key to ~{remote.user}/.ssh/"
                          f"authorized_keys on the board ({text})", remote=remote.where)
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return BenchError(f"{remote.host}'s host key changed since the last connection: if the board was "
                          f"reinstalled, remove its line from {config.known_hosts()} ({text})",
                          remote=remote.where)
    return BenchError(f"cannot reach {remote.where} over SSH: {text or 'ssh exited'}", remote=remote.where)


def board_arch(client: Any) -> str:
    """The board's architecture as edgebench names it (arm64, amd64)."""
    from ..core.images import arch_name

    return arch_name(client.info().get("Architecture", ""))


def ship_image(local: Any, remote: Any, image_id: str, tag: str) -> None:
    """Put the image on the board's engine when it is not there yet (save here, load there)."""
    with contextlib.suppress(Exception):
        remote.images.get(image_id)
        return
    data = local.images.get(image_id).save(named=True)
    loaded = remote.images.load(b"".join(data))
    if loaded:
        loaded[0].tag(*tag.rsplit(":", 1))
