"""CI gates generated from the policies: one scenario per registered policy, one baseline file each.

The gate of policy NAME of a kind has the id ``<prefix>_<NAME>`` (``scheduler_sarathi``,
``kv_paged``) and its numbers in ``experiments/baselines/<id>.yaml`` (``sim.tools.check``
format). Its scenario is built, never stored::

    kind default scenario (DEFAULTS: the shape every policy of the kind shares, NAME filled in)
      + the class's own example_config(), if it defines one   (not inherited: a subclass is
        a policy of its own and starts from the kind default)
      = the gate scenario; it must use the policy, or building it fails

``example_config()`` is a classmethod returning a mapping applied over the kind default key
by key, in order. Each key is a dotted path, as in ``servesim run --set``
(``cluster.pools[0].kv.num_blocks``); its value replaces what is there, and an index one past
the end of a list appends. So ``{"workload.transforms": [...]}`` changes one thing, and a
mapping of whole sections (``workload``, ``cluster``, ...) is a full scenario::

    @classmethod
    def example_config(cls) -> dict:
        \"\"\"Three replicas plus one in a 'long' pool.\"\"\"     # first line: the gate's description
        return {"cluster.router.long_input_tokens": 400, "cluster.pools[0].num_replicas": 3,
                "cluster.pools[1]": {"name": "long", ...}}

Routers, schedulers, KV managers and hand-offs are all gated (a class without
``example_config`` runs its kind's default); cost models, speculators, controllers and
workloads only when their class defines ``example_config`` (over the scheduler default with
``vllm_v1``). ``servesim gate [NAMES...] [--update] [--out DIR]`` runs and checks them;
``--update`` writes the baseline files; a policy with no baseline file fails its gate.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim.config import SimulationConfig, from_dict, split_path
from sim.errors import ConfigError, ServesimError
from sim.registry import (
    CONTROLLERS,
    COST_MODELS,
    HANDOFFS,
    KV_MANAGERS,
    PREDICTORS,
    ROUTERS,
    SCHEDULERS,
    SPECULATORS,
    WORKLOADS,
    Registry,
)

BASELINES = Path("experiments") / "baselines"
_REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------- kind defaults

SLO = {"ttft_s": 0.5, "tpot_s": 0.05}
ENGINE = {"progress": False}
CONSTANT = {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2.0e-05}
KV_BYTES = 131072.0  # per token, for the hand-off scenarios' KV copies


def synthetic(num_requests: int, rate_rps: float, input_tokens_max: int = 1024) -> dict[str, Any]:
    """The gates' workload: Poisson arrivals, uniform prompts 64..max, outputs 8..128 tokens."""
    return {"name": "synthetic", "num_requests": num_requests, "rate_rps": rate_rps, "input_tokens": 64,
            "input_tokens_max": input_tokens_max, "output_tokens": 8, "output_tokens_max": 128}


def pool(name: str, num_replicas: int, scheduler: str = "vllm_v1", num_blocks: int = 4000,
         role: str = "mixed") -> dict[str, Any]:
    """A pool of the gates' shape: constant cost model, paged KV of 16-token blocks."""
    return {"name": name, "role": role, "num_replicas": num_replicas, "cost_model": dict(CONSTANT),
            "scheduler": {"name": scheduler}, "kv": {"name": "paged", "block_size": 16, "num_blocks": num_blocks}}


def _scenario(workload: dict, cluster: dict) -> dict[str, Any]:
    return {"seed": 0, "workload": workload, "cluster": cluster, "slo": dict(SLO), "engine": dict(ENGINE)}


def router_default(name: str) -> dict[str, Any]:
    """Four replicas of vLLM v1 behind the router."""
    return _scenario(synthetic(600, 80.0), {"router": {"name": name}, "pools": [pool("main", 4)]})


def scheduler_default(name: str) -> dict[str, Any]:
    """One replica under load, small KV (preemptions)."""
    return _scenario(synthetic(400, 30.0), {"router": "round_robin", "pools": [pool("main", 1, name, 800)]})


def kv_default(name: str) -> dict[str, Any]:
    """One vLLM v1 replica under load, small KV (preemptions)."""
    data = scheduler_default("vllm_v1")
    data["cluster"]["pools"][0]["kv"] = {"name": name, "block_size": 16, "num_blocks": 800}
    return data


def handoff_default(name: str) -> dict[str, Any]:
    """1 prefill + 2 decode replicas, KV copied over a shared link."""
    prefill = {"name": "prefill", "role": "prefill", "num_replicas": 1,
               "cost_model": {**CONSTANT, "kv_bytes_per_token": KV_BYTES},
               "scheduler": {"name": "distserve_prefill"}, "kv": {"name": "paged", "num_blocks": 2000}}
    decode = {"name": "decode", "role": "decode", "num_replicas": 2,
              "cost_model": {"name": "constant", "step_s": 0.01, "per_decode_token_s": 1.0e-04,
                             "kv_bytes_per_token": KV_BYTES},
              "scheduler": {"name": "vllm_v1"}, "kv": {"name": "paged", "num_blocks": 800}}
    return _scenario(synthetic(300, 12.0), {"router": "least_outstanding", "handoff": {"name": name},
                                            "pools": [prefill, decode]})


def base_default(name: str) -> dict[str, Any]:
    """The scheduler default with vLLM v1 (kinds gated only through their example_config)."""
    return scheduler_default("vllm_v1")


# ---------------------------------------------------------------------------- kinds


def _pools(cfg: SimulationConfig, attr: str, name: str) -> bool:
    return any(getattr(p, attr) is not None and getattr(p, attr).name == name for p in cfg.cluster.pools)


@dataclass(frozen=True)
class Kind:
    """A registry whose policies get gates."""

    label: str                                   # the registry's kind, as `servesim policies` prints it
    prefix: str                                  # of the gate id and baseline file name
    registry: Registry
    default: Callable[[str], dict[str, Any]]     # the kind's default scenario for a policy name
    uses: Callable[[SimulationConfig, str], bool]
    always: bool                                 # gate every registered name, not only those with example_config


KINDS = (
    Kind("router", "router", ROUTERS, router_default, lambda c, n: c.cluster.router.name == n, True),
    Kind("scheduler", "scheduler", SCHEDULERS, scheduler_default, lambda c, n: _pools(c, "scheduler", n), True),
    Kind("kv manager", "kv", KV_MANAGERS, kv_default, lambda c, n: _pools(c, "kv", n), True),
    Kind("handoff", "handoff", HANDOFFS, handoff_default,
         lambda c, n: c.cluster.handoff is not None and c.cluster.handoff.name == n, True),
    Kind("cost model", "cost_model", COST_MODELS, base_default, lambda c, n: _pools(c, "cost_model", n), False),
    Kind("speculator", "speculator", SPECULATORS, base_default, lambda c, n: _pools(c, "speculation", n), False),
    Kind("controller", "controller", CONTROLLERS, base_default,
         lambda c, n: any(s.name == n for s in c.cluster.controllers), False),
    Kind("predictor", "predictor", PREDICTORS, base_default,
         lambda c, n: c.cluster.predictor is not None and c.cluster.predictor.name == n, False),
    Kind("workload", "workload", WORKLOADS, base_default, lambda c, n: c.workload.name == n, False),
)


def kind(label: str) -> Kind:
    """The Kind of a registry label (``router``, ``kv manager``) or gate prefix (``kv``)."""
    for k in KINDS:
        if label in (k.label, k.prefix):
            return k
    raise ServesimError(f"unknown policy kind {label!r} (kinds: {', '.join(k.label for k in KINDS)})")


def own_example_config(cls: Any) -> Callable[[], dict[str, Any]] | None:
    """``cls.example_config`` when ``cls`` itself defines it (not inherited), else None."""
    if "example_config" not in vars(cls):
        return None
    return cls.example_config


# ---------------------------------------------------------------------------- scenarios


def apply(data: dict[str, Any], changes: dict[str, Any], where: str = "example_config()") -> dict[str, Any]:
    """``data`` with each dotted path of ``changes`` set to its value (an index == len appends)."""
    data = copy.deepcopy(data)
    for path, value in changes.items():
        parts = split_path(path)
        node: Any = data
        for i, key in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(key, int):
                if not isinstance(node, list) or key > len(node):
                    raise ConfigError(f"index {key} out of range in {path!r}", where)
                if key == len(node):
                    node.append({})
            elif not isinstance(node, dict):
                raise ConfigError(f"{path!r}: {key!r} is not inside a mapping", where)
            elif not last and (key not in node or node[key] is None):
                node[key] = [] if isinstance(parts[i + 1], int) else {}
            elif not last and isinstance(node[key], str):
                node[key] = {"name": node[key]}  # 'router: round_robin' then 'router.x: 1'
            if last:
                node[key] = copy.deepcopy(value)
            else:
                node = node[key]
    return data


def scenario(kind_label: str, name: str) -> dict[str, Any]:
    """The gate scenario (a config mapping) of policy ``name`` of the kind ``kind_label``."""
    k = kind(kind_label)
    data = k.default(name)
    example = own_example_config(k.registry.get(name))
    if example is not None:
        changes = example()
        if not isinstance(changes, dict):
            raise ConfigError(f"{k.label} {name!r}: example_config() must return a mapping, got {changes!r}")
        data = apply(data, changes, f"{k.label} {name!r} example_config()")
    if not k.uses(from_dict(data), name):
        raise ConfigError(f"{k.label} {name!r}: its gate scenario does not use it (check example_config())")
    return data


@dataclass(frozen=True)
class Gate:
    """One policy's CI gate."""

    kind: Kind
    name: str

    @property
    def id(self) -> str:
        """``<prefix>_<name>``: the baseline's file name and the run folder's."""
        return f"{self.kind.prefix}_{self.name}"

    @property
    def description(self) -> str:
        """The example_config docstring's first line, else the kind default's."""
        fn = own_example_config(self.kind.registry.get(self.name)) or self.kind.default
        return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""

    def config(self) -> dict[str, Any]:
        """The scenario mapping."""
        return scenario(self.kind.label, self.name)

    def baseline(self, baselines: Path) -> Path:
        """Where its numbers live."""
        return baselines / f"{self.id}.yaml"


def all_gates() -> list[Gate]:
    """Every gated policy, sorted by gate id."""
    gates = []
    for k in KINDS:
        for name in k.registry.names():
            if k.always or own_example_config(k.registry.get(name)) is not None:
                gates.append(Gate(k, name))
    return sorted(gates, key=lambda g: g.id)


def select(names: list[str]) -> list[Gate]:
    """Gates named by id (``router_pecsched``) or by policy name (``pecsched``: every kind)."""
    gates = all_gates()
    if not names:
        return gates
    chosen: list[Gate] = []
    for name in names:
        found = [g for g in gates if name in (g.id, g.name)]
        if not found:
            choices = sorted({g.id for g in gates} | {g.name for g in gates})
            close = difflib.get_close_matches(name, choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ServesimError(f"no gate {name!r}{hint} (see servesim gate --list)")
        chosen.extend(g for g in found if g not in chosen)
    return chosen


def default_baselines() -> Path:
    """``experiments/baselines`` in the working directory, else in this source checkout."""
    return BASELINES if BASELINES.is_dir() or not (_REPO / BASELINES).is_dir() else _REPO / BASELINES


# ---------------------------------------------------------------------------- running


def run_gate(gate: Gate, out_dir: Path, baselines: Path, update: bool = False, out: Any = None) -> int:
    """Run one gate's scenario into ``out_dir/<id>`` and check it; 0 when it passes (or is updated)."""
    from sim.api import simulate
    from sim.tools.check import check
    from sim.tools.output import write_run

    out = out if out is not None else sys.stdout
    baseline = gate.baseline(baselines)
    if not update and not baseline.is_file():
        print(f"servesim gate {gate.id}: FAIL: no baseline {baseline} "
              f"(create it with: servesim gate {gate.id} --update)", file=out)
        return 1
    data = gate.config()
    run_dir = out_dir / gate.id
    write_run(simulate(data), run_dir)
    (run_dir / "scenario.yaml").write_text(scenario_yaml(gate, data))
    head = f"# {gate.id} gate baseline: rewrite with `servesim gate {gate.id} --update`\n"
    return check(run_dir, baseline, update=update, out=out, head=head)


def scenario_yaml(gate: Gate, data: dict[str, Any] | None = None) -> str:
    """The scenario as a YAML file ``servesim run`` takes, headed by its description."""
    data = gate.config() if data is None else data
    return (f"# CI gate scenario {gate.id} ({gate.kind.label} {gate.name!r}): {gate.description}\n"
            + yaml.safe_dump(data, sort_keys=False))


def run_gates(names: list[str], out_dir: str | Path = "runs/gates", baselines: str | Path | None = None,
              update: bool = False, out: Any = None) -> int:
    """Run and check the named gates (all when none); 0 when all pass."""
    out = out if out is not None else sys.stdout
    baselines = Path(baselines) if baselines is not None else default_baselines()
    gates = select(names)
    failed = []
    for gate in gates:
        try:
            code = run_gate(gate, Path(out_dir), baselines, update, out)
        except ServesimError as exc:  # a broken scenario fails its own gate, not the others
            print(f"servesim gate {gate.id}: FAIL: {exc}", file=out)
            code = 1
        if code != 0:
            failed.append(gate.id)
    verdict = f"{len(failed)} failed: {', '.join(failed)}" if failed else "all passed"
    print(f"servesim gate: {len(gates)} gate{'s' if len(gates) != 1 else ''}, {verdict}", file=out)
    return 1 if failed else 0


def list_gates(names: list[str], baselines: str | Path | None = None, out: Any = None) -> int:
    """Print each gate's id, whether its baseline exists, and its description."""
    out = out if out is not None else sys.stdout
    baselines = Path(baselines) if baselines is not None else default_baselines()
    gates = select(names)
    width = max(len(g.id) for g in gates)
    for g in gates:
        mark = "baseline" if g.baseline(baselines).is_file() else "NO BASELINE"
        print(f"{g.id:<{width}}  {mark:<11}  {g.description}", file=out)
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``servesim gate``."""
    p = sub.add_parser("gate", help="CI gates: run every policy's generated scenario and check its baseline")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="gate ids (scheduler_sarathi) or policy names (pecsched: every kind); default all")
    p.add_argument("--update", action="store_true", help="write or rewrite the baseline files")
    p.add_argument("--out", default="runs/gates", help="folder for the runs, one subfolder per gate")
    p.add_argument("--baselines", default=None, help="baseline folder (default experiments/baselines)")
    p.add_argument("--list", action="store_true", help="list the gates and their baselines, run nothing")
    p.add_argument("--print", dest="show", action="store_true",
                   help="print the scenarios as YAML (servesim run takes them), run nothing")
    p.set_defaults(handler=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    if args.list:
        return list_gates(args.names, args.baselines)
    if args.show:
        print("\n".join(scenario_yaml(g) for g in select(args.names)), end="")
        return 0
    return run_gates(args.names, args.out, args.baselines, args.update)
