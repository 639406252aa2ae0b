"""The run configuration: YAML -> typed, validated dataclasses.

Layout of a config file (every section optional except workload)::

    seed: 0
    workload: {name: trace, path: traces/data/azure_llm_2023_conv.csv}
    cluster:
      router: {name: least_outstanding}
      pools:
        - name: main
          role: mixed                  # mixed | prefill | decode
          num_replicas: 4
          hardware: {device: H100-SXM, model: Llama-3-8B, tp: 1, pp: 1}
          cost_model: {name: analytic}
          scheduler: {name: vllm_v1, max_num_batched_tokens: 2048}
          kv: {name: paged, block_size: 16, enable_prefix_caching: false}
          cold_start: {source: storage}   # replicas added at run time (autoscaling)
      transfer: {link: ethernet-100g, max_stages: 3, max_stop_blocks: 16}   # migrations (Llumnix)
      controllers: [{name: reactive_autoscaler, pools: [main], max_replicas: 8}]
      predictor: {name: noisy, sigma: 0.5}   # output-length predictor for policies that use one
    slo: {ttft_s: 2.0, tpot_s: 0.1}
    output: {record_steps: false}
    engine: {fast_forward: true}

Every policy section is ``{name: <registered name>, <its parameters>}``; the parameters are
validated against the policy's own ``Params`` dataclass at load time.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sim import schema
from sim.engine.held_pool import HoldConfig
from sim.engine.model_placement import ServingParams
from sim.engine.transfer import TransferParams
from sim.errors import ConfigError
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
from sim.schema import param


class PolicySpec:
    """A registered policy chosen by name, with its validated parameter block."""

    registry: Registry

    def __init__(self, name: str, params: Any, policy_cls: type):
        self.name = name
        self.params = params
        self.policy_cls = policy_cls

    @classmethod
    def from_config(cls, value: Any, path: str) -> PolicySpec:
        """Parse ``name`` or ``{name: ..., **params}``."""
        if isinstance(value, PolicySpec):
            return value
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise ConfigError(f"expected a {cls.registry.kind} name or mapping, got {value!r}", path)
        if "name" not in value:
            raise ConfigError(f"missing 'name' (choices: {', '.join(cls.registry.names())})", path)
        name = value["name"]
        if not isinstance(name, str):
            raise ConfigError(f"expected a string, got {name!r}", f"{path}.name")
        policy_cls = cls.registry.get(name, f"{path}.name")
        rest = {k: v for k, v in value.items() if k != "name"}
        params_cls = getattr(policy_cls, "Params", None)
        if params_cls is None:
            if rest:
                raise ConfigError(f"{cls.registry.kind} {name!r} takes no parameters", f"{path}.{next(iter(rest))}")
            params = None
        else:
            params = schema.parse(params_cls, rest, path)
        return cls(name, params, policy_cls)

    @classmethod
    def default(cls, name: str) -> Any:
        """A dataclass default_factory producing this spec with default parameters."""
        return lambda: cls.from_config(name, "")

    def to_config(self) -> dict[str, Any]:
        out = {"name": self.name}
        if self.params is not None:
            out.update(schema.to_dict(self.params))
        return out

    def build(self, *args: Any, **kwargs: Any) -> Any:
        """Instantiate the policy with its parameters."""
        return self.policy_cls(self.params, *args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_config()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PolicySpec) and self.to_config() == other.to_config()


class RouterSpec(PolicySpec):
    registry = ROUTERS


class SchedulerSpec(PolicySpec):
    registry = SCHEDULERS


class KVSpec(PolicySpec):
    registry = KV_MANAGERS


class CostModelSpec(PolicySpec):
    registry = COST_MODELS


class SpeculatorSpec(PolicySpec):
    registry = SPECULATORS


class ControllerSpec(PolicySpec):
    registry = CONTROLLERS


class WorkloadSpec(PolicySpec):
    registry = WORKLOADS


class HandoffSpec(PolicySpec):
    registry = HANDOFFS


class PredictorSpec(PolicySpec):
    registry = PREDICTORS


@dataclass
class HardwareConfig:
    """What a replica runs on and what it serves."""

    device: str = param("H100-SXM", doc="catalog GPU name, or 'GPU:profile' for a MIG slice")
    model: str = param("Llama-3-8B", doc="catalog model name or path to a Hugging Face config.json")
    tp: int = param(1, ge=1, doc="tensor-parallel degree")
    pp: int = param(1, ge=1, doc="pipeline-parallel degree")
    weight_dtype: Literal["bf16", "fp16", "fp8", "int8", "int4"] = param("bf16", doc="weight precision")
    kv_dtype: Literal["bf16", "fp16", "fp8", "int8", "int4"] = param("bf16", doc="KV-cache precision")

    def validate(self) -> None:
        """tp x pp must fit in one node: every cost model prices TP and PP over the node's own
        link (NVLink), and none models an inter-node one, so a bigger replica would be priced
        as one impossible NVLink domain. Unknown devices are left to the cost model to report."""
        from hardware.devices import get_device

        try:
            device = get_device(self.device)
        except ConfigError:
            return
        if self.tp * self.pp > device.gpus_per_node:
            raise ConfigError(f"tp x pp = {self.tp} x {self.pp} = {self.tp * self.pp} GPUs, but a {device.name} "
                              f"node has {device.gpus_per_node} in one NVLink domain and inter-node TP/PP is not "
                              "modelled; use at most that many GPUs per replica (more replicas instead)", "tp")

    def model_key(self) -> str:
        """The model's canonical name (catalog name, or the path as written for a config.json)."""
        from hardware.models import get_model

        try:
            return get_model(self.model).name
        except ConfigError:
            return self.model


ColdStartSource = Literal["storage", "storage_fast", "host_memory", "remote", "custom"]


@dataclass
class ColdStartConfig:
    """How long a replica added at run time takes before it serves (``hardware.cold_start``).

    cold start = weight bytes per GPU / load bandwidth + engine start. Each source has a
    default bandwidth per GPU (GB/s), measured figures in ``hardware/cold_start.py``:
    ``storage`` local NVMe with the stock safetensors loader (3.6), ``storage_fast`` local
    NVMe with a loading-optimised format (ServerlessLLM Store, 23), ``host_memory`` a
    checkpoint pinned in host DRAM copied over the device's host link (its measured
    host->GPU rate: 35 on an H100 SXM), ``remote`` a download over the network (5),
    ``custom`` whatever ``load_gbps`` says. ``engine_start_s`` covers the rest of vLLM's
    start-up (profiling, KV allocation, CUDA-graph capture): 14.2 s measured for Llama-3-8B.
    """

    source: ColdStartSource = param("storage", doc="where the weights are loaded from")
    load_gbps: float | None = param(None, gt=0, doc="load bandwidth per GPU, GB/s (default: the source's)")
    engine_start_s: float = param(14.2, ge=0, doc="engine start-up after the weights are in (vLLM, Llama-3-8B)")
    transfer_link: str | None = param(None, doc="load through the cluster's transfer service over this "
                                                "hardware.links link, when the cluster has one")

    def validate(self) -> None:
        if self.source == "custom" and self.load_gbps is None:
            raise ConfigError("source 'custom' needs load_gbps", "load_gbps")


@dataclass
class PoolConfig:
    """A group of identical replicas sharing one role."""

    name: str = param("main", doc="pool name, shown in request rows")
    role: Literal["mixed", "prefill", "decode", "attention", "expert"] = param(
        "mixed", doc="what the pool's replicas do (attention: serve requests, holding an expert pool per step)")
    num_replicas: int = param(1, ge=1, doc="replicas in the pool")
    hardware: HardwareConfig = param(default_factory=HardwareConfig)
    cost_model: CostModelSpec = param(default_factory=CostModelSpec.default("analytic"))
    scheduler: SchedulerSpec = param(default_factory=SchedulerSpec.default("vllm_v1"))
    kv: KVSpec = param(default_factory=KVSpec.default("paged"))
    speculation: SpeculatorSpec | None = param(None, doc="speculative decoding policy, off if null")
    cold_start: ColdStartConfig = param(default_factory=ColdStartConfig,
                                        doc="start-up time of replicas added at run time")
    holds: HoldConfig | None = param(None, doc="a pool each iteration holds for part of it (attention -> expert)")
    serving: ServingParams | None = param(None, doc="serve several models on replicas that switch between "
                                                    "them (sim.engine.multimodel); null: hardware.model only")


@dataclass
class ClusterConfig:
    """Pools of replicas, the router in front of them and periodic controllers."""

    router: RouterSpec = param(default_factory=RouterSpec.default("round_robin"))
    pools: list[PoolConfig] = param(default_factory=lambda: [PoolConfig()])
    controllers: list[ControllerSpec] = param(default_factory=list)
    handoff: HandoffSpec | None = param(None, doc="where a prefilled request's KV goes (disaggregation)")
    transfer: TransferParams = param(default_factory=TransferParams, doc="KV copies: live-migration knobs and link")
    predictor: PredictorSpec | None = param(None, doc="output-length predictor handed to every policy "
                                                       "(ctx.predictor), none if null")

    def validate(self) -> None:
        if not self.pools:
            raise ConfigError("at least one pool is needed", "pools")
        roles = {p.role for p in self.pools}
        if self.handoff is not None and "decode" not in roles:
            raise ConfigError("a hand-off moves prefilled requests to a decode pool, and there is none "
                              "(add a pool with role: decode, or drop handoff:)", "handoff")
        if self.handoff is not None:
            self._check_one_model()
        if "prefill" in roles and self.handoff is None:
            raise ConfigError("a prefill pool needs a hand-off policy (e.g. handoff: distserve)", "handoff")
        if "prefill" in roles and "decode" not in roles and "mixed" not in roles:
            raise ConfigError("a prefill pool needs a decode or mixed pool to hand requests to", "pools")
        for i, pool in enumerate(self.pools):
            if pool.serving is not None and (pool.role != "mixed" or self.handoff is not None):
                raise ConfigError("a multi-model pool (serving:) must be a mixed pool in a cluster without a "
                                  "hand-off (its KV cache changes with the model)", f"pools[{i}].serving")
        names = [p.name for p in self.pools]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise ConfigError(f"duplicate pool name {name!r}", f"pools[{i}].name")
        self._check_holds(names)

    def _check_holds(self, names: list[str]) -> None:
        """attention pools hold an expert pool of the same model; expert pools are held only."""
        held = set()
        for i, pool in enumerate(self.pools):
            if pool.role == "attention" and pool.holds is None:
                raise ConfigError("an attention pool needs holds: {pool: <an expert pool>}", f"pools[{i}].holds")
            if pool.holds is None:
                continue
            if pool.role != "attention":
                raise ConfigError(f"only attention pools hold another pool (this one is {pool.role!r})",
                                  f"pools[{i}].holds")
            if pool.holds.pool not in names:
                raise ConfigError(f"no pool named {pool.holds.pool!r} (pools: {', '.join(names)})",
                                  f"pools[{i}].holds.pool")
            target = self.pools[names.index(pool.holds.pool)]
            if target.role != "expert":
                raise ConfigError(f"pool {target.name!r} has role {target.role!r}; the held pool must have "
                                  "role: expert", f"pools[{i}].holds.pool")
            if target.hardware.model_key() != pool.hardware.model_key():
                raise ConfigError(f"pool {target.name!r} serves {target.hardware.model!r}, not "
                                  f"{pool.hardware.model!r}", f"pools[{i}].holds.pool")
            held.add(target.name)
        for i, pool in enumerate(self.pools):
            if pool.role == "expert" and pool.name not in held:
                raise ConfigError(f"expert pool {pool.name!r} is held by no attention pool", f"pools[{i}].role")

    def _check_one_model(self) -> None:
        """Pools joined by a hand-off exchange KV caches, so they must serve one model."""
        first = self.pools[0]
        for i, pool in enumerate(self.pools[1:], start=1):
            if pool.hardware.model_key() != first.hardware.model_key():
                raise ConfigError(f"pool {pool.name!r} serves {pool.hardware.model!r} but pool {first.name!r} "
                                  f"serves {first.hardware.model!r}: pools joined by a hand-off must serve the "
                                  "same model (their KV caches move between them)", f"pools[{i}].hardware.model")


@dataclass
class SLOConfig:
    """Service-level objectives; null disables a check. Requests may carry their own."""

    ttft_s: float | None = param(None, gt=0, doc="time-to-first-token limit")
    tpot_s: float | None = param(None, gt=0, doc="time-per-output-token limit")
    e2e_s: float | None = param(None, gt=0, doc="end-to-end latency limit")


@dataclass
class OutputConfig:
    """What the run records beyond one row per request."""

    record_steps: bool = param(False, doc="keep one row per replica iteration (result.steps)")
    record_token_times: bool = param(False, doc="keep every token's timestamp per request")
    trace_events: bool = param(False, doc="write trace.json (Chrome / Perfetto trace events of every "
                                          "replica's iterations and KV moves); records the steps")
    trace_events_max: int = param(200_000, ge=1, doc="bound on trace.json's events: iterations are "
                                                     "sampled every n-th when more")


@dataclass
class EngineConfig:
    """Knobs of the event loop itself."""

    fast_forward: bool = param(True, doc="advance pure-decode stretches in one event")
    max_time_s: float | None = param(None, gt=0, doc="stop the simulated clock here")
    progress: bool = param(True, doc="show a progress bar on long runs (stderr, tty only)")


@dataclass
class SimulationConfig:
    """A whole run: workload, cluster, SLOs, outputs and seed."""

    workload: WorkloadSpec
    seed: int = param(0, ge=0, doc="root of the run's numpy SeedSequence")
    cluster: ClusterConfig = param(default_factory=ClusterConfig)
    slo: SLOConfig = param(default_factory=SLOConfig)
    output: OutputConfig = param(default_factory=OutputConfig)
    engine: EngineConfig = param(default_factory=EngineConfig)


# ---------------------------------------------------------------------------- loading

_INDEX = re.compile(r"^(?P<key>[^\[\]]*)((\[(?P<idx>\d+)\])*)$")


def split_path(path: str) -> list[str | int]:
    """``a.b[0].c`` -> ['a', 'b', 0, 'c']."""
    parts: list[str | int] = []
    for token in path.split("."):
        m = _INDEX.match(token)
        if not m or (not m.group("key") and not parts):
            raise ConfigError(f"malformed key path {path!r}")
        if m.group("key"):
            parts.append(m.group("key"))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", token))
    return parts


def set_dotted(data: dict, path: str, value: Any) -> None:
    """Set ``data[a][b][0][c] = value`` for ``path='a.b[0].c'``, creating mappings as needed."""
    parts = split_path(path)
    node: Any = data
    for i, key in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                raise ConfigError(f"index {key} out of range in {path!r}")
            node = node[key]
            continue
        if key not in node or node[key] is None:
            node[key] = [] if isinstance(nxt, int) else {}
        elif isinstance(node[key], str) and not isinstance(nxt, int):
            node[key] = {"name": node[key]}  # 'scheduler: vllm' then 'scheduler.max_num_seqs=8'
        node = node[key]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"index {last} out of range in {path!r}")
    node[last] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` with the value read as YAML (numbers, booleans, lists)."""
    import yaml  # imported here: a config given as a mapping never needs it

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects key.path=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with yaml.safe_load; syntax errors name file and line."""
    import yaml  # imported here: a config given as a mapping never needs it

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error at{line}: {problem}", file=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping", file=str(path))
    return data


def line_of(path: str | Path, dotted: str) -> int | None:
    """The 1-based line in YAML file ``path`` where key path ``dotted`` is written, if any."""
    import yaml  # imported here: a config given as a mapping never needs it

    try:
        node = yaml.compose(Path(path).read_text())
        parts = split_path(dotted)
    except (OSError, yaml.YAMLError, ConfigError):
        return None
    line = None
    for key in parts:
        if isinstance(node, yaml.MappingNode):
            found = None
            for k, v in node.value:
                if k.value == key:
                    found = (k, v)
                    break
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def from_dict(data: dict, overrides: list[str] | tuple[str, ...] = (), file: str | None = None) -> SimulationConfig:
    """Parse a config mapping (after applying ``key=value`` overrides)."""
    data = copy.deepcopy(data)
    set_keys = []
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(data, key, value)
        set_keys.append((key, text))
    try:
        return schema.parse(SimulationConfig, data, "")
    except ConfigError as exc:
        blamed = _override_at(exc.where, set_keys)
        if blamed is not None:  # the value came from the command line, not from a line of the file
            raise ConfigError(exc.message, exc.where, f"--set {blamed}") from None
        if file is None:
            raise
        line = line_of(file, exc.where) if exc.where else None
        where = f"{file}:{line}" if line else file
        raise exc.in_file(where) from None


def _override_at(where: str, set_keys: list[tuple[str, str]]) -> str | None:
    """The last ``--set`` text whose key is ``where`` or a section above or below it."""
    if not where:
        return None
    try:
        at = split_path(where)
    except ConfigError:
        return None
    for key, text in reversed(set_keys):
        try:
            parts = split_path(key)
        except ConfigError:
            continue
        n = min(len(parts), len(at))
        if parts[:n] == at[:n]:
            return text
    return None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SimulationConfig:
    """Read, override and validate a YAML config file. Relative trace paths stay as written."""
    return from_dict(load_yaml(path), overrides, file=str(path))


def dump_config(config: SimulationConfig) -> str:
    """The resolved config as YAML (every default written out)."""
    import yaml  # imported here: a config given as a mapping never needs it

    return yaml.safe_dump(schema.to_dict(config), sort_keys=False)
