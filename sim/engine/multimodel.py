"""Replicas that serve many models: weights in HBM, a host tier or storage; switches priced by placement.

Active only when a pool has a ``serving:`` block (pools without one run exactly as before)::

    request naming model m --> pools that serve m (none: rejected 'model_not_served'; m fits
       no replica of them: 'model_does_not_fit') --> router(request, their active replicas) --> R
    R runs m, nothing queued for a switch:  R.enqueue(request), as in a single-model pool
    else                                    R's model queue (FCFS); once R is empty it switches to
                                            the head's model and takes every queued request of it

    switch of R to m                                             then m can run ("cold start" of
      m resident in R's HBM:      switch_overhead_s              a request: arrival -> here)
      stream (C2CServe):          switch_overhead_s; m runs at once, each iteration reading rho W
                                  over the chip's shared host link and (1 - rho) W from HBM;
                                  the weights rho leaves are copied into HBM in the background
      else load W_m from weights_home over the chip's link (transfer service) + switch_overhead_s,
                                  + engine_start_s with switch: restart (a new engine)

A switch rebuilds R's cost model and KV cache for m (R is empty then); HBM holds the resident
models' weights, the KV gets the rest. ``max_resident`` and the memory evict the least recently
used model; ``keep_alive_s`` unloads a model left idle that long (the next request pays a
load). Every load, background copy and weight stream of the slices of one chip shares that
chip's link (``hardware.links.SharedLink``: equal shares), so contention is the shared-link
model's. A cuttable (layer-cut) plan is priced by the HybridGEMM formula at the link's current
share instead of streaming (``hardware.weight_tiers``).
"""

from __future__ import annotations

import dataclasses
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hardware.devices import get_device
from hardware.models import get_model
from hardware.weight_tiers import HOST_TIERS, host_link_spec, slices_per_chip, source_link_spec, weight_bytes_read
from sim.engine.clock import CONTROL, at
from sim.engine.request import Request, State
from sim.errors import ConfigError
from sim.schema import param

if TYPE_CHECKING:
    from sim.engine.replica import Replica

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
        self.copying = False
        self.idle_since: float | None = None
        self.num_switches = 0

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

    def __init__(self, key: tuple, host: Any, load: Any, dram_cache_bytes: float):
        self.key, self.host, self.load = key, host, load
        self.dram: OrderedDict[str, float] = OrderedDict()  # tiered: checkpoints cached in host memory
        self.dram_cache_bytes = dram_cache_bytes


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


class ModelHub:
    """Every multi-model pool of a cluster: routing by model, switches, keep-alive, records."""

    def __init__(self, cluster: Any):
        self.cluster, self.env, self.transfer = cluster, cluster.env, cluster.transfer
        self.pools: dict[str, PoolModels] = {}
        for i, pool in enumerate(cluster.pools):
            if pool.config.serving is not None:
                self.pools[pool.name] = PoolModels(pool, pool.config.serving, f"cluster.pools[{i}].serving")
        self.default_model = cluster.pools[0].config.hardware.model_key()
        self._names: dict[str, str | None] = {}
        self.chips: dict[tuple, Chip] = {}
        self.num_switches = 0
        self.num_loads = 0
        self.load_bytes = 0.0
        # one row per link use: chip index, kind (0 stream, 1 load, 2 background copy), start, end, bytes
        self._l_chip, self._l_kind = array("q"), array("b")
        self._l_start, self._l_end, self._l_bytes = array("d"), array("d"), array("d")
        # one row per change of a replica's HBM weights: time, replica, model, bytes
        self._m_time, self._m_rep, self._m_model, self._m_bytes = array("d"), array("q"), [], array("d")
        for rep in cluster.replicas:
            self.adopt(rep)

    # ------------------------------------------------------------------ wiring
    def adopt(self, rep: Replica) -> None:
        """Give a replica of a multi-model pool its model state (at build or when added)."""
        pm = self.pools.get(rep.pool)
        if pm is None:
            return
        p = pm.params
        k = sum(1 for r in pm.pool.replicas if r is not rep and r.id < rep.id)
        per = p.slices_per_chip or slices_per_chip(pm.device)
        chip = self._chip((rep.pool, k // per), pm)
        rep.models = ModelState(chip, pm.default, p.rho)
        if p.stream:
            rep.models.hbm_fraction = 0.0
            rep.fast_forward = False  # every iteration streams: its time depends on the link's load
            rep.cost_model = pm.cost_models[pm.default].__class__(
                pm.cost_models[pm.default].params, pm.models[pm.default])
            rep.step_hook = lambda plan, rep=rep: self._stream(rep, plan)
            rep.kv = self._build_kv(rep, pm, pm.default, 0.0)
            rep.max_tokens = rep.kv.max_tokens
        rep.models.resident[pm.default] = pm.hbm_weight_bytes(pm.default) if not p.stream else 0.0
        self._memory_row(rep, pm.default, rep.models.resident[pm.default])
        done = rep.on_done

        def on_done(req: Any) -> None:
            done(req)
            self._soon(rep)

        rep.on_done = on_done

    def _chip(self, key: tuple, pm: PoolModels) -> Chip:
        chip = self.chips.get(key)
        if chip is None:
            p, dev = pm.params, pm.device
            host = self.transfer.link(("chip", key, "host"), host_link_spec(dev))
            home = "storage_fast" if p.weights_home == "tiered" else p.weights_home
            load = host if home in HOST_TIERS and p.load_gbps is None else \
                self.transfer.link(("chip", key, "load"), source_link_spec(home, dev, p.load_gbps))
            cache = p.dram_cache_gb * GB if p.dram_cache_gb else (dev.grace_memory_bytes or 256 * GB)
            chip = self.chips[key] = Chip(key, host, load, float(cache))
            chip.index = len(self.chips) - 1
        return chip

    def canonical(self, name: str | None) -> str | None:
        """The catalog name of a requested model (None: unknown to the catalog)."""
        if name is None:
            return self.default_model
        if name not in self._names:
            try:
                self._names[name] = model_key(name)
            except ConfigError:
                self._names[name] = None
        return self._names[name]

    # ------------------------------------------------------------------ routing
    def candidates(self, req: Request) -> tuple[list[Any] | None, str]:
        """The replica views that may serve ``req`` (active, of pools serving its model), or
        (None, reason) when none ever can."""
        model = self.canonical(req.model)
        if model is None:
            return None, "model_not_served"
        req.model = model
        c = self.cluster
        served = fits = False
        views = []
        for pool in c.pools:
            if pool.role not in ("mixed", "prefill"):
                continue
            pm = self.pools.get(pool.name)
            if pm is None:
                if pool.config.hardware.model_key() != model:
                    continue
                served = True
                ok = req.input_tokens + req.output_tokens <= max((r.max_tokens for r in pool.replicas), default=0)
            elif model in pm.models:
                served = True
                ok = pm.fits(model) and req.input_tokens + req.output_tokens <= pm.max_tokens(model)
            else:
                continue
            if ok:
                fits = True
                views.extend(r.view for r in pool.replicas if r.lifecycle == "active")
        if not served:
            return None, "model_not_served"
        if not fits:
            return None, "model_does_not_fit"
        return views, ""

    def enqueue(self, rep: Replica, req: Request) -> None:
        """Hand ``req`` to ``rep``: at once if it runs the model and no switch waits, else queued."""
        st = getattr(rep, "models", None)
        if st is None:
            rep.enqueue(req)
            return
        if st.loaded == req.model and not st.switching and not st.queue:
            self._touch(rep, req.model)
            rep.enqueue(req)
            return
        req.state = State.QUEUED
        req.replica, req.pool = rep.id, rep.pool
        st.queue.append(req)
        self._soon(rep)

    def live_requests(self) -> list[Request]:
        """Requests waiting in model queues."""
        return [r for rep in self.cluster.replicas if getattr(rep, "models", None) is not None
                for r in rep.models.queue]

    def switch_time_s(self, rep: Replica, model: str) -> float:
        """Seconds ``rep`` would take to be able to run ``model`` if it switched now (0: runs it)."""
        st, pm = rep.models, self.pools[rep.pool]
        p = pm.params
        if st.loaded == model and not st.switching:
            return 0.0
        if p.stream or model in st.resident:
            return p.switch_overhead_s
        link = st.chip.load
        if p.weights_home == "tiered" and model in st.chip.dram:
            link = st.chip.host
        load = self.transfer.time_s(pm.weight_bytes[model], link) * (1 + link.num_active)
        return load + p.switch_overhead_s + (p.engine_start_s if p.switch == "restart" else 0.0)

    # ------------------------------------------------------------------ switches
    def _soon(self, rep: Replica) -> None:
        ev = at(self.env, self.env.now, CONTROL)
        ev.callbacks.append(lambda _e: self._check(rep))

    def _is_empty(self, rep: Replica) -> bool:
        return not (rep.num_outstanding or rep.waiting or rep.running or rep.swapped or rep.paused is not None)

    def _check(self, rep: Replica) -> None:
        st = rep.models
        if st.switching or not self._is_empty(rep):
            return
        if st.queue:
            st.switching = True  # before the process starts: a second check at this instant must not
            self.env.process(self._switch(rep, st.queue[0].model))
        elif st.idle_since is None:
            st.idle_since = self.env.now
            keep = self.pools[rep.pool].params.keep_alive_s
            if keep is not None:
                ev = at(self.env, self.env.now + keep, CONTROL)
                ev.callbacks.append(lambda _e, t=st.idle_since: self._expire(rep, t))

    def _expire(self, rep: Replica, idle_since: float) -> None:
        st = rep.models
        if st.idle_since == idle_since and not st.switching and not st.queue and self._is_empty(rep):
            for m in list(st.resident):
                self._evict(rep, m)
            st.loaded = None

    def _touch(self, rep: Replica, model: str) -> None:
        st = rep.models
        st.idle_since = None
        if model in st.resident:
            st.resident.move_to_end(model)

    def _evict(self, rep: Replica, model: str) -> None:
        rep.models.resident.pop(model, None)
        self._memory_row(rep, model, 0.0)

    def _make_room(self, rep: Replica, pm: PoolModels, model: str) -> float:
        """Evict least recently used models until ``model`` fits beside the rest; their bytes."""
        st, p = rep.models, pm.params
        usable = pm.usable_bytes(model)
        keep = (p.max_resident or 1 << 30) - 1
        need = pm.hbm_weight_bytes(model) + p.min_kv_gb * GB
        for m in list(st.resident):
            if m == model:
                continue
            others = sum(b for k, b in st.resident.items() if k != model)
            over_count = sum(1 for k in st.resident if k != model) > keep
            over_memory = usable is not None and others + need > usable
            if not (over_count or over_memory):
                break
            self._evict(rep, m)
        return sum(b for k, b in st.resident.items() if k != model)

    def _switch(self, rep: Replica, model: str):
        env, st, pm = self.env, rep.models, self.pools[rep.pool]
        p = pm.params
        st.switching = True
        st.target = model
        st.idle_since = None
        others = self._make_room(rep, pm, model)
        resident = model in st.resident
        if not (p.stream or resident):
            w = pm.weight_bytes[model]
            link = st.chip.load
            if p.weights_home == "tiered" and model in st.chip.dram:
                link = st.chip.host
            self.num_loads += 1
            self.load_bytes += w
            t0 = env.now
            yield self.transfer.copy(w, link)
            self._link_row(st.chip, 1, t0, env.now, w)
            if p.weights_home == "tiered":
                self._cache(st.chip, model, w)
            if p.switch == "restart":
                yield at(env, env.now + p.engine_start_s, CONTROL)
        yield at(env, env.now + p.switch_overhead_s, CONTROL)
        self._install(rep, pm, model, others, resident)
        st.switching = False
        st.target = None
        self.num_switches += 1
        st.num_switches += 1
        now, moved = env.now, []
        for r in st.queue:
            if r.model == model:
                moved.append(r)
        if moved:
            st.queue = deque(r for r in st.queue if r.model != model)
            self._touch(rep, model)
        for r in moved:
            r.cold_start_s = now - r.arrival_s
            rep.enqueue(r)
        if p.stream and p.copy_to_hbm and st.hbm_fraction < 1.0 - st.rho_target:
            env.process(self._copy_in(rep))
        self._soon(rep)

    def _install(self, rep: Replica, pm: PoolModels, model: str, others: float, resident: bool) -> None:
        st, p = rep.models, pm.params
        if p.stream:
            base = pm.cost_models[model]
            rep.cost_model = base.__class__(base.params, pm.models[model])
            w = pm.weight_bytes[model]
            st.hbm_fraction = min(1.0, st.resident.get(model, 0.0) / w) if w > 0 else 1.0
            st.rho_target = max(st.rho_target, pm.rho_floor[model])
            hbm = st.hbm_fraction * pm.weight_bytes[model]
        else:
            rep.cost_model = pm.cost_models[model]
            st.hbm_fraction = 1.0
            hbm = pm.weight_bytes[model]
        rep.hardware = pm.models[model]
        rep.kv = self._build_kv(rep, pm, model, others)
        rep.max_tokens = rep.kv.max_tokens
        from sim.engine.replica import cost_model_layers

        rep.num_layers = cost_model_layers(rep.cost_model)
        st.loaded = model
        st.resident[model] = hbm
        st.resident.move_to_end(model)
        if not resident or p.stream:
            self._memory_row(rep, model, hbm)

    def _build_kv(self, rep: Replica, pm: PoolModels, model: str, others: float) -> Any:
        cfg = pm.pool.config
        ctx = self.cluster.context(None, cfg.kv.params, f"{pm.pool.where}.kv", pm.pool)
        ctx.cost_model = _KVSizing(pm.cost_models[model], pm.kv_capacity_bytes(model, others))
        return cfg.kv.build(ctx)

    def _cache(self, chip: Chip, model: str, w: float) -> None:
        chip.dram[model] = w
        chip.dram.move_to_end(model)
        while sum(chip.dram.values()) > chip.dram_cache_bytes and len(chip.dram) > 1:
            chip.dram.popitem(last=False)

    # ------------------------------------------------------------------ streaming (C2CServe)
    def _stream(self, rep: Replica, plan: Any) -> Any:
        """Before an iteration of a streaming replica: price HBM's share of the weight reads and
        start the stream of the rest over the chip's link; the iteration waits for both."""
        st, pm = rep.models, self.pools[rep.pool]
        rho = st.rho
        cm = rep.cost_model
        tokens = plan.num_prefill_tokens + (len(plan.decode) if plan.decode_tokens is None
                                            else sum(plan.decode_tokens))
        if plan.preemptible or plan.hold or plan.done_layers or plan.stop_at_layer is not None:
            if hasattr(cm, "set_weight_read_scale"):
                share = st.chip.host.bytes_per_s / (1 + st.chip.host.num_active)
                hbm = pm.device.hbm_gbps * 1e9 * getattr(cm.params, "memory_efficiency", 1.0)
                cm.set_weight_read_scale(max(rho * hbm / share, 1.0 - rho))
            return None
        if hasattr(cm, "set_weight_read_scale"):
            cm.set_weight_read_scale(1.0 - rho)
        if rho <= 0.0:
            return None
        num_bytes = rho * pm.bytes_read(rep.hardware.model, tokens)
        event = self.transfer.copy(num_bytes, st.chip.host)
        t0 = self.env.now
        event.callbacks.append(lambda _e: self._link_row(st.chip, 0, t0, self.env.now, num_bytes))
        return event

    def set_rho(self, rep: Replica, rho: float) -> None:
        """Set a streaming replica's rho target (clamped to its model's floor); a lower target
        starts a background copy of the weights it leaves to HBM, a higher one frees HBM."""
        st, pm = rep.models, self.pools[rep.pool]
        model = st.loaded
        if model is None:
            st.rho_target = rho
            return
        st.rho_target = min(1.0, max(rho, pm.rho_floor[model]))
        if st.hbm_fraction > 1.0 - st.rho_target:
            st.hbm_fraction = 1.0 - st.rho_target
            st.resident[model] = st.hbm_fraction * pm.weight_bytes[model]
            self._memory_row(rep, model, st.resident[model])
        elif pm.params.copy_to_hbm and not st.copying and st.hbm_fraction < 1.0 - st.rho_target:
            self.env.process(self._copy_in(rep))

    def _copy_in(self, rep: Replica):
        """Copy the weights the rho target leaves to HBM over the chip's link, in quarters."""
        st, pm = rep.models, self.pools[rep.pool]
        model = st.loaded
        st.copying = True
        w = pm.weight_bytes[model]
        while st.loaded == model and st.hbm_fraction < 1.0 - st.rho_target - 1e-9:
            step = min(0.25, 1.0 - st.rho_target - st.hbm_fraction)
            t0 = self.env.now
            yield self.transfer.copy(step * w, st.chip.host)
            self._link_row(st.chip, 2, t0, self.env.now, step * w)
            if st.loaded != model:
                break
            st.hbm_fraction = min(1.0, st.hbm_fraction + step)
            st.resident[model] = st.hbm_fraction * w
            self._memory_row(rep, model, st.resident[model])
        st.copying = False

    # ------------------------------------------------------------------ records
    def _link_row(self, chip: Chip, kind: int, start: float, end: float, num_bytes: float) -> None:
        self._l_chip.append(chip.index)
        self._l_kind.append(kind)
        self._l_start.append(start)
        self._l_end.append(end)
        self._l_bytes.append(num_bytes)

    def _memory_row(self, rep: Replica, model: str, num_bytes: float) -> None:
        self._m_time.append(self.env.now)
        self._m_rep.append(rep.id)
        self._m_model.append(model)
        self._m_bytes.append(num_bytes)
