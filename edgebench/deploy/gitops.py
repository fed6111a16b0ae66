"""The GitOps repository: a real git repository (local, or with a remote it pushes to). What each site runs is
read back from its rendered files; every promotion and rollback is one commit that also appends a release record
to ``edgebench/releases.yaml``. Nothing is overwritten: a repository with uncommitted changes or a remote that has
moved on is refused before anything is written."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import DeployError
from .render import GENERATED
from .sites import Sites

RELEASES = "edgebench/releases.yaml"
MANAGED = ("base", "sites", "tests", "fleet", "policy")
_PIN = re.compile(r"digest: (sha256:[0-9a-f]{64})|^Image=\S+@(sha256:[0-9a-f]{64})$", re.M)


def git(repo: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if check and done.returncode != 0:
        raise DeployError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip() or done.stdout.strip()}",
                          repo=str(repo))
    return done.stdout


def open_repo(path: str | os.PathLike[str], *, create: bool = False) -> Path:
    """A git working tree, made when ``create`` and missing; refused with uncommitted changes or when its
    remote has commits it does not have (nothing would be overwritten)."""
    repo = Path(path)
    if not (repo / ".git").exists():
        if not create:
            raise DeployError(f"{repo} is not a git repository: run `git init {repo}` (or `edgebench deploy render` "
                              "to make one)", repo=str(repo))
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
    dirty = git(repo, "status", "--porcelain")
    if dirty.strip():
        first = dirty.strip().splitlines()[0]
        raise DeployError(f"{repo} has uncommitted changes ({first.strip()}...): commit or stash them first; "
                          "edgebench overwrites nothing", repo=str(repo))
    if git(repo, "remote").strip():
        git(repo, "fetch", "-q")
        upstream = git(repo, "rev-parse", "--abbrev-ref", "@{u}", check=False).strip()
        if upstream and git(repo, "rev-list", "--count", "HEAD..@{u}").strip() not in ("", "0"):
            raise DeployError(f"{repo}'s remote ({upstream}) has commits this clone does not have: pull (and "
                              "resolve) first; edgebench overwrites nothing", repo=str(repo))
    return repo


def pins(repo: Path, sites: Sites) -> dict[str, str]:
    """The digest each site's rendered files pin (sites never rendered are absent)."""
    found = {}
    for site in sites.sites:
        folder = repo / "sites" / site.name
        for file in sorted(folder.glob("*")) if folder.is_dir() else []:
            if file.is_file():
                match = _PIN.search(file.read_text())
                if match:
                    found[site.name] = match[1] or match[2]
                    break
    return found


def write(repo: Path, files: dict[str, str]) -> list[str]:
    """Write the rendered files and remove generated files that are no longer rendered; returns what changed."""
    changed = []
    for top in MANAGED:
        for path in sorted((repo / top).rglob("*")) if (repo / top).is_dir() else []:
            rel = path.relative_to(repo).as_posix()
            if path.is_file() and rel not in files and path.read_text(errors="replace").startswith(GENERATED[:20]):
                path.unlink()
                changed.append(rel)
    for rel, text in sorted(files.items()):
        path = repo / rel
        if path.is_file() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        changed.append(rel)
    return changed


def releases(repo: Path) -> list[dict[str, Any]]:
    path = repo / RELEASES
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    return list(data.get("releases", []))


def record(repo: Path, entry: dict[str, Any]) -> None:
    history = [*releases(repo), entry]
    path = repo / RELEASES
    path.parent.mkdir(exist_ok=True)
    path.write_text("# Every promotion and rollback edgebench committed, oldest first.\n"
                    + yaml.safe_dump({"releases": history}, sort_keys=False, width=1000))


def commit(repo: Path, message: str) -> str:
    """Commit everything (as the user git knows, else as edgebench) and push when there is a remote; returns the
    commit id."""
    git(repo, "add", "-A")
    who = [] if git(repo, "config", "user.email", check=False).strip() else [
        "-c", "user.name=edgebench", "-c", "user.email=edgebench@localhost"]
    git(repo, *who, "commit", "-q", "-m", message)
    if git(repo, "remote").strip():
        upstream = git(repo, "rev-parse", "--abbrev-ref", "@{u}", check=False).strip()
        git(repo, "push", "-q", *([] if upstream else ["-u", "origin", "HEAD"]))
    return git(repo, "rev-parse", "HEAD").strip()
