"""Stack files: a serving stack's fitted constants as YAML (written by ``servesim fit``).

A stack file replaces the named stack's overheads and, when present, the kernel
efficiencies, so a user's own measurements become a cost-model setting::

    cost_model: {name: analytic, stack: vllm_v1, stack_file: my_cluster_stack.yaml}

Keys (all optional except ``base_stack``): ``base_stack`` (the stack it starts from),
``iteration_s``, ``layer_prefill_s``, ``layer_decode_s``, ``seq_s``, ``request_s``,
``frontend_request_s``, ``frontend_token_s`` (seconds), ``frontend_servers`` (an integer >= 1),
``memory_efficiency``, ``gemm_compute_efficiency`` (shares in (0, 1]); other keys (such as
``fitted_to`` and ``errors``) are notes and ignored.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml

from hardware import calibration_constants as cc
from sim.errors import ConfigError

OVERHEADS = ("iteration_s", "layer_prefill_s", "layer_decode_s", "seq_s", "request_s", "frontend_request_s",
             "frontend_token_s")
EFFICIENCIES = ("memory_efficiency", "gemm_compute_efficiency")


def read_stack_file(path: str | Path) -> dict[str, Any]:
    """The validated mapping of a stack file (ConfigError naming the key otherwise)."""
    where = "cost_model.stack_file"
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read stack file {path}: {exc.strerror}", where) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"stack file {path} is not YAML: {exc}", where) from None
    if not isinstance(data, dict):
        raise ConfigError(f"stack file {path} must be a mapping", where)
    base = data.get("base_stack", cc.DEFAULT_STACK)
    if base not in cc.STACKS:
        raise ConfigError(f"unknown base_stack {base!r} (choices: {', '.join(cc.STACKS)})", f"{where}.base_stack")
    for key in OVERHEADS + EFFICIENCIES:
        if key not in data:
            continue
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"must be a finite number >= 0, got {v!r}", f"{where}.{key}")
        if key in EFFICIENCIES and not 0 < v <= 1:
            raise ConfigError(f"must be in (0, 1], got {v!r}", f"{where}.{key}")
    if "frontend_servers" in data:
        v = data["frontend_servers"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"must be an integer >= 1, got {v!r}", f"{where}.frontend_servers")
    return data


def apply_stack_file(params: Any, stack: cc.StackOverheads) -> tuple[Any, cc.StackOverheads]:
    """(params with the file's efficiencies, the file's base stack with its overheads)."""
    data = read_stack_file(params.stack_file)
    base = cc.STACKS[data.get("base_stack", cc.DEFAULT_STACK)]
    stack = dataclasses.replace(base, **{k: float(data[k]) for k in OVERHEADS if k in data},
                                source=f"stack file {params.stack_file}")
    if "frontend_servers" in data:
        stack = dataclasses.replace(stack, frontend_servers=int(data["frontend_servers"]))
    effs = {k: float(data[k]) for k in EFFICIENCIES if k in data}
    return (dataclasses.replace(params, **effs) if effs else params), stack


def write_stack_file(path: str | Path, base_stack: str, values: dict[str, float], notes: dict[str, Any]) -> None:
    """Write a stack file: the base stack's overheads with ``values`` applied, plus notes."""
    base = cc.STACKS[base_stack]
    data: dict[str, Any] = {"base_stack": base_stack}
    data.update({k: float(getattr(base, k)) for k in OVERHEADS})
    data["frontend_servers"] = int(base.frontend_servers)
    data.update({k: float(v) for k, v in values.items()})
    data.update(notes)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
