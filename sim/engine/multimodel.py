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

The serving block, per-model sizing and replica state live in ``sim.engine.model_placement``,
the streaming in ``sim.engine.weight_stream``; ``sim.engine.serving_records`` reports.
"""

from __future__ import annotations

from array import array
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

from hardware.weight_tiers import HOST_TIERS, host_link_spec, slices_per_chip, source_link_spec
from sim.engine.clock import CONTROL, at
from sim.engine.model_placement import (
    GB,
    Chip,
    ModelState,
    PoolModels,
    _KVSizing,
    model_key,
)
from sim.engine.request import Request, State
from sim.engine.weight_stream import WeightStreamMixin
from sim.errors import ConfigError

if TYPE_CHECKING:
    from sim.engine.replica import Replica


class ModelHub(WeightStreamMixin):
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
            rep.step_hook = partial(self._stream, rep)  # (plan) -> the iteration's stream event
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
            chip = self.chips[key] = Chip(key, len(self.chips), host, load, float(cache))
            chip.stream_row = partial(self._link_row, chip, 0)  # (start_s, end_s, bytes): a weight stream's row
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
        if p.stream and p.copy_to_hbm and st.copying != model and st.hbm_fraction < 1.0 - st.rho_target:
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

    # ------------------------------------------------------------------ records
    def _link_row(self, chip: Chip, kind: int, start: float, end: float, num_bytes: float) -> None:
        self._l_chip.append(chip.index)
        self._l_kind.append(kind)
        self._l_start.append(start)
        self._l_end.append(end)
        self._l_bytes.append(num_bytes)

    def settle_links(self) -> None:
        """Bring every chip's links up to now and put the link rows in time order: a copy nobody
        waits on completes lazily (``SharedLink``), so its row, with its exact end time, lands
        when its link is next looked at; sorted by end time (stable) the rows are in the order
        the completions happened."""
        import numpy as np

        for chip in self.chips.values():
            chip.host.poll()
            chip.load.poll()
        ends = np.frombuffer(self._l_end, dtype=np.float64)
        if len(ends) > 1 and bool(np.any(ends[1:] < ends[:-1])):
            order = np.argsort(ends, kind="stable")
            for arr, dtype in ((self._l_chip, np.int64), (self._l_kind, np.int8), (self._l_start, np.float64),
                               (self._l_end, np.float64), (self._l_bytes, np.float64)):
                arr[:] = array(arr.typecode, np.frombuffer(arr, dtype=dtype)[order].tobytes())

    def _memory_row(self, rep: Replica, model: str, num_bytes: float) -> None:
        self._m_time.append(self.env.now)
        self._m_rep.append(rep.id)
        self._m_model.append(model)
        self._m_bytes.append(num_bytes)
