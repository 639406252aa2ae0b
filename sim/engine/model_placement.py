"""Where a multi-model pool's models go: its serving block, HBM room and KV sizing per model.

``ServingParams`` is a pool's ``serving:`` block (``sim.engine.multimodel`` runs it);
``PoolModels`` holds per model its cost model, weight bytes, the HBM its weights keep (all of
them, or ``(1 - rho_floor) W`` when streaming: a model bigger than a slice's HBM streams at
least the share that does not fit, keeping ``min_kv_gb`` for KV) and the KV capacity that
leaves; ``ModelState`` is one replica's resident models and switch queue; ``Chip`` the links
(host tier, storage) the replicas of one chip share.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Literal

from hardware.devices import get_device
from hardware.models import get_model
from hardware.weight_tiers import HOST_TIERS, weight_bytes_read
from sim.engine.request import Request
from sim.errors import ConfigError
from sim.schema import param

GB = 1e9


def model_key(name: str) -> str:
    """The canonical name of a model: the catalog's, or ``Base@tag`` for a variant (a fine-tune
    with Base's architecture and its own weights, e.g. ``Llama-3-8B@chat``)."""
    base, sep, tag = name.partition("@")
    key = get_model(base).name
    return f"{key}@{tag}" if sep else key


def base_model(key: str) -> str:
    """The architecture a model key names (a variant's base)."""
    return key.partition("@")[0]


@dataclass
class ServingParams:
    """A pool serving several models on replicas that switch between them (serverless)."""

    models: list[str] = param(default_factory=list, doc="models served besides hardware.model (catalog names; "
                              "Base@tag: a variant with Base's architecture and its own weights)")
    weights_home: Literal["grace", "host_memory", "storage", "storage_fast", "remote", "tiered"] = param(
        "host_memory", doc="where weights not in HBM live (tiered: a host-memory cache, else storage_fast)")
    load_gbps: float | None = param(None, gt=0, doc="load bandwidth per chip, GB/s (default: the tier's)")
    dram_cache_gb: float | None = param(None, gt=0, doc="tiered: checkpoint cache in host memory per chip, GB "
                                        "(default: the superchip's Grace memory, else 256)")
    switch: Literal["swap", "restart"] = param("swap", doc="swap: weights replaced in a running engine; "
                                               "restart: a new engine starts after the load")
    engine_start_s: float = param(14.2, ge=0, doc="restart: engine start-up after the load (vLLM, Llama-3-8B)")
    switch_overhead_s: float = param(0.1, ge=0, doc="fixed cost of every switch (unknown: 0.1 s assumed)")
    keep_alive_s: float | None = param(60.0, gt=0, doc="unload a model idle this long (null: never)")
    max_resident: int | None = param(None, ge=1, doc="models resident in one replica's HBM (null: as memory allows)")
    stream: bool = param(False, doc="run a model at once reading its weights from the host tier (C2CServe)")
    rho: float = param(1.0, ge=0, le=1, doc="stream: initial share of weight reads over the host link")
    rho_min: float = param(0.0, ge=0, le=1, doc="stream: lowest rho; (1 - rho_min) W of HBM is kept for weights")
    min_kv_gb: float = param(1.0, ge=0, doc="stream: HBM kept for KV when a model's weights do not fit")
    copy_to_hbm: bool = param(True, doc="stream: copy the weights rho leaves into HBM in the background")
    slices_per_chip: int | None = param(None, ge=1, doc="replicas per chip sharing its links (default: by MIG profile)")

    def validate(self) -> None:
        if self.stream and self.weights_home not in HOST_TIERS:
            raise ConfigError(f"stream reads weights from the host tier, not {self.weights_home!r} "
                              "(weights_home: grace or host_memory)", "weights_home")


class _KVSizing:
    """The cost model a KV manager is built with after a switch: the model's, with the KV
    capacity that the resident weights leave."""

    def __init__(self, cost_model: Any, capacity_bytes: float):
        self._cm, self._capacity = cost_model, capacity_bytes

    def kv_capacity_bytes(self, gpu_memory_utilization: float) -> float:
        return self._capacity

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cm, name)


class ModelState:
    """One replica's models: the one it runs, those resident in HBM, its switch queue."""

    def __init__(self, chip: Any, loaded: str, rho: float):
        self.chip = chip
        self.loaded: str | None = loaded
        self.resident: OrderedDict[str, float] = OrderedDict()  # model -> HBM bytes, least recent first
        self.queue: deque[Request] = deque()
        self.switching = False
        self.target: str | None = None  # the model a switch in progress loads
        self.rho_target = rho
        self.hbm_fraction = 1.0  # share of the loaded model's weights in HBM
        self.copying: str | None = None  # the model a background copy into HBM is for
        self.idle_since: float | None = None
        self.num_switches = 0
        self.priced_by: Any = None  # the cost model the stream last set a weight-read scale on ...
        self.priced_scale = 1.0     # ... and that scale (weight_stream.py: set again only on a change)

    @property
    def next_model(self) -> str | None:
        """The model it runs once the switch in progress (if any) ends."""
        return self.target if self.switching and self.target is not None else self.loaded

    @property
    def rho(self) -> float:
        """The share of weight reads over the host link now: what is not in HBM, or more if asked."""
        return max(self.rho_target, 1.0 - self.hbm_fraction)


class Chip:
    """The links a chip's replicas share: host tier (C2C or PCIe) and storage."""

    def __init__(self, key: tuple, index: int, host: Any, load: Any, dram_cache_bytes: float):
        self.key, self.index, self.host, self.load = key, index, host, load
        self.dram: OrderedDict[str, float] = OrderedDict()  # tiered: checkpoints cached in host memory
        self.dram_cache_bytes = dram_cache_bytes
        self.stream_row: Any = None  # (start_s, end_s, bytes) -> None: records a weight stream's link use


class PoolModels:
    """Per pool: its serving block, a cost model and KV sizing per model."""

    def __init__(self, pool: Any, params: ServingParams, where: str):
        from sim.engine.cluster import build_cost_model

        self.pool, self.params, self.where = pool, params, where
        hw = pool.config.hardware
        self.default = hw.model_key()
        self.models: dict[str, Any] = {self.default: hw}
        for j, name in enumerate(params.models):
            try:
                key = model_key(name)
            except ConfigError as exc:
                raise ConfigError(exc.message, f"{where}.models[{j}]") from None
            self.models[key] = dataclasses.replace(hw, model=base_model(key))
        by_arch: dict[str, Any] = {base_model(self.default): pool.cost_model}
        for h in self.models.values():
            if h.model not in by_arch:
                by_arch[h.model] = build_cost_model(dataclasses.replace(pool.config, hardware=h), pool.where)
        self.cost_models = {m: by_arch[h.model] for m, h in self.models.items()}
        self.device = get_device(hw.device)
        self.weight_dtype = hw.weight_dtype
        self.weight_bytes = {m: get_model(base_model(m)).weight_bytes(hw.weight_dtype) / max(1, hw.tp * hw.pp)
                             for m in self.models}
        kv = pool.config.kv.params
        self.util = float(getattr(kv, "gpu_memory_utilization", 0.9) or 0.9)
        self.fixed_blocks = getattr(kv, "num_blocks", None)
        self.rho_floor = {m: self._rho_floor(m) for m in self.models}
        self._read: dict[tuple[str, int], float] = {}
        self._moe: dict[str, bool] = {}

    def bytes_read(self, arch: str, num_tokens: int) -> float:
        """Weight bytes one iteration of ``num_tokens`` tokens of architecture ``arch`` reads (cached)."""
        key = (arch, num_tokens if self._moe.get(arch) else 0)
        b = self._read.get(key)
        if b is None:
            spec = get_model(arch)
            self._moe[arch] = spec.is_moe
            key = (arch, num_tokens if spec.is_moe else 0)
            b = self._read[key] = weight_bytes_read(spec, self.weight_dtype, max(num_tokens, 1)) / max(
                1, getattr(self.cost_models[self.default], "num_gpus", 1))
        return b

    def usable_bytes(self, model: str) -> float | None:
        """HBM per GPU left for weights and KV after activations (None: the cost model does not say)."""
        cm = self.cost_models[model]
        if not hasattr(cm, "activation_reserve_bytes"):
            return None
        return self.device.memory_bytes * self.util - cm.activation_reserve_bytes()

    def _rho_floor(self, model: str) -> float:
        p, w = self.params, self.weight_bytes[model]
        usable = self.usable_bytes(model)
        if not p.stream:
            return 0.0
        if usable is None:
            return p.rho_min
        room = max(0.0, usable - p.min_kv_gb * GB)
        return max(p.rho_min, 1.0 - room / w) if w > 0 else p.rho_min

    def hbm_weight_bytes(self, model: str) -> float:
        """HBM bytes a replica keeps for ``model``'s weights."""
        return (1.0 - self.rho_floor[model]) * self.weight_bytes[model]

    def fits(self, model: str) -> bool:
        """Whether ``model`` can run on this pool's replicas at all."""
        usable = self.usable_bytes(model)
        return usable is None or usable - self.hbm_weight_bytes(model) > 0

    def kv_capacity_bytes(self, model: str, others_bytes: float) -> float:
        usable = self.usable_bytes(model)
        if usable is None:
            return 0.0
        gpus = getattr(self.cost_models[model], "num_gpus", 1)
        return max(0.0, usable - self.hbm_weight_bytes(model) - others_bytes) * gpus

    def max_tokens(self, model: str) -> int:
        """Tokens the KV cache holds with only ``model`` resident."""
        bs = int(getattr(self.pool.config.kv.params, "block_size", 16) or 16)
        if self.fixed_blocks is not None:
            return int(self.fixed_blocks) * bs
        per_token = self.cost_models[model].kv_bytes_per_token
        return int(self.kv_capacity_bytes(model, 0.0) // (bs * per_token)) * bs
