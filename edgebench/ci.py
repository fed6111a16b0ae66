"""Pipeline definitions for CI systems that call the same ``edgebench`` commands, with the same gates (exit
codes): a GitHub Actions workflow, or a Tekton Task and the Pipeline that runs it (two YAML documents).
Both install edgebench from the repository they run in (``pip install .``)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

import yaml

from .core.errors import InvalidInputError

FORMATS = ("github-actions", "tekton")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as literal blocks, as people write them."""


_Dumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                                       style="|" if "\n" in value else None))


def _commands(model: str, devices: Sequence[str], slo_p99_ms: float | None, slo_ram_mb: float | None,
              registry: str | None, train: bool) -> list[str]:
    commands = []
    if train:
        commands.append(f"edgebench run notebooks/train.ipynb -p model_name {shlex.quote(model)}")
    flags = [f"--model {shlex.quote(model)}", *(f"--device {shlex.quote(d)}" for d in devices)]
    if slo_p99_ms is not None:
        flags.append(f"--slo-p99-ms {slo_p99_ms:g}")
    if slo_ram_mb is not None:
        flags.append(f"--slo-ram-mb {slo_ram_mb:g}")
    if registry:
        flags.append(f"--registry {shlex.quote(registry)}")
    commands.append("edgebench pipeline " + " ".join(flags))
    return commands


def export_pipeline(
    format: str,
    *,
    model: str = "digits-rf",
    devices: Sequence[str] = ("rpi4-1gb",),
    slo_p99_ms: float | None = 20.0,
    slo_ram_mb: float | None = 256.0,
    registry: str | None = None,
    train: bool = True,
    python: str = "3.11",
) -> str:
    """The YAML of a pipeline for ``format`` (``github-actions`` or ``tekton``)."""
    if format not in FORMATS:
        raise InvalidInputError(f"unknown pipeline format {format!r}: use {' or '.join(FORMATS)}")
    if not devices:
        raise InvalidInputError("give at least one device")
    commands = _commands(model, devices, slo_p99_ms, slo_ram_mb, registry, train)
    if format == "github-actions":
        return yaml.dump(_github(commands, python, registry), Dumper=_Dumper, sort_keys=False, width=120)
    return yaml.dump_all(_tekton(commands, python), Dumper=_Dumper, sort_keys=False, width=120)


def _github(commands: list[str], python: str, registry: str | None) -> dict[str, Any]:
    env = {"EDGEBENCH_HOME": "${{ github.workspace }}/.edgebench", "ORT_DISABLE_TELEMETRY": "1"}
    if registry:
        env.update({"EDGEBENCH_REGISTRY_USERNAME": "${{ secrets.EDGEBENCH_REGISTRY_USERNAME }}",
                    "EDGEBENCH_REGISTRY_PASSWORD": "${{ secrets.EDGEBENCH_REGISTRY_PASSWORD }}"})
    steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": python}},
        {"name": "Install edgebench", "run": "sudo apt-get install -y 7zip && pip install ."},
    ]
    steps += [{"name": "Train (notebook)" if c.startswith("edgebench run") else "Bench, build, test, publish",
               "run": c} for c in commands]
    steps.append({"name": "Keep the reports", "if": "always()", "uses": "actions/upload-artifact@v4",
                  "with": {"name": "edgebench-runs", "path": ".edgebench/runs"}})
    return {"name": "edge pipeline", "on": {"push": {"branches": ["main"]}, "workflow_dispatch": {}},
            "jobs": {"edge": {"runs-on": "ubuntu-latest", "env": env, "steps": steps}}}


def _tekton(commands: list[str], python: str) -> list[dict[str, Any]]:
    script = "#!/bin/sh\nset -e\napt-get update -qq && apt-get install -y -qq 7zip\npip install .\n" + \
        "\n".join(commands) + "\n"
    task = {
        "apiVersion": "tekton.dev/v1", "kind": "Task", "metadata": {"name": "edgebench-edge"},
        "spec": {
            "workspaces": [{"name": "source", "description": "the repository with notebooks/"}],
            "steps": [{
                "name": "edge", "image": f"python:{python}-slim-bookworm",
                "workingDir": "$(workspaces.source.path)",
                "env": [{"name": "EDGEBENCH_HOME", "value": "$(workspaces.source.path)/.edgebench"},
                        {"name": "ORT_DISABLE_TELEMETRY", "value": "1"}],
                "script": script,
            }],
        },
    }
    pipeline = {
        "apiVersion": "tekton.dev/v1", "kind": "Pipeline", "metadata": {"name": "edgebench-edge"},
        "spec": {
            "workspaces": [{"name": "source"}],
            "tasks": [{"name": "edge", "taskRef": {"name": "edgebench-edge"},
                       "workspaces": [{"name": "source", "workspace": "source"}]}],
        },
    }
    return [task, pipeline]
