"""Defaults a run fell back on that change its numbers, said out loud.

A config may leave out a pool's hardware, scheduler or the SLOs; the run then uses the
defaults (H100-SXM serving Llama-3-8B at TP1, the vllm_v1 scheduler, no SLO ...).
``servesim run`` prints one note per default it applied, so nobody reads an H100 result as
their own GPU's. The resolved config.yaml has every default written out.
"""

from __future__ import annotations

from typing import Any

from sim.config import SimulationConfig


def applied_defaults(raw: dict[str, Any], config: SimulationConfig) -> list[str]:
    """One line per default that ``raw`` (the YAML mapping as written) left to the simulator."""
    notes = []
    cluster = raw.get("cluster") or {}
    raw_pools = cluster.get("pools")
    if raw_pools is None:
        notes.append("cluster.pools: not set, one pool of 1 replica")
        raw_pools = [{}]
    for i, (pool, resolved) in enumerate(zip(raw_pools, config.cluster.pools, strict=False)):
        hw = (pool or {}).get("hardware") or {}
        where = f"cluster.pools[{i}]"
        missing = [k for k in ("device", "model") if k not in hw]
        if missing:
            got = ", ".join(f"{k} {getattr(resolved.hardware, k)}" for k in missing)
            notes.append(f"{where}.hardware: {got} by default")
        if "scheduler" not in (pool or {}):
            notes.append(f"{where}.scheduler: {resolved.scheduler.name} by default")
    if "router" not in cluster and len(config.cluster.pools) and sum(p.num_replicas for p in config.cluster.pools) > 1:
        notes.append(f"cluster.router: {config.cluster.router.name} by default")
    if "slo" not in raw:
        slo = ", ".join(f"{k.removesuffix('_s')} {v:g} s" for k, v in vars(config.slo).items()
                        if k.endswith("_s") and v is not None)
        notes.append(f"slo: {slo or 'none (every finished request meets it)'} by default")
    return notes
