"""GoodServe's rectification: every period, re-estimate the requests in flight and move those
that would miss their deadline to an instance where they would not (GoodServe, "Towards
High-Goodput Serving of Agentic LLM Inferences over Heterogeneous Resources").

Every ``period_s``, for each decoding request with a deadline on an active instance::

    at risk      now + estimate here > deadline - risk_margin_s   (``policies.goodserve_estimate``:
                 predicted tokens left x TPOT at the instance's load; the deadline is the call's
                 share of its job's budget set by the ``goodserve`` router, else its own)
    move cost    KV copy over the migration link (``cluster.transfer``) when it is quicker than
                 prefilling its context again at the target ("when the link allows"); else
                 re-prefill there (``Migrate(recompute=True)``: its KV dropped, queued there)
    target       among other active instances where now + move cost + estimate <= deadline,
                 the least capable ("just enough", as the router); none: it stays
    order        the most urgent first (least slack), at most ``max_moves_per_period`` per period,
                 one migration in or out of an instance at a time (the transfer service's limit)

The period and margin are not public (abstract only): parameters, 1 s and 0 s. A KV copy goes
live (pre-copy) unless ``live`` is false. It needs a predictor (``cluster.predictor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.goodserve_estimate import CompletionEstimator
from sim.engine.seams import Action, BuildContext, ControllerBase, Migrate
from sim.engine.views import ClusterView
from sim.registry import CONTROLLERS
from sim.schema import param

DATA = "traces/data/sharegpt_8k_lengths_llama2_tokenizer.csv"


@dataclass
class GoodServeRectifyParams:
    """Period, risk margin and move limits of GoodServe's rectification."""

    period_s: float = param(1.0, gt=0, doc="seconds between re-estimates (unknown: 1 s)")
    risk_margin_s: float = param(0.0, ge=0, doc="at risk when the estimate ends within this of the deadline")
    max_moves_per_period: int = param(4, ge=1, doc="most migrations started per period")
    live: bool = param(True, doc="KV copies by live pre-copy (else stop and copy)")
    capability_tolerance: float = param(0.05, ge=0, doc="relative capability difference within one class")


@CONTROLLERS.register("goodserve_rectify")
class GoodServeRectify(ControllerBase):
    """Move at-risk requests to an instance that can still meet their deadline."""

    Params = GoodServeRectifyParams

    def __init__(self, params: GoodServeRectifyParams, ctx: BuildContext):
        super().__init__(params, ctx)
        self.est = CompletionEstimator(ctx.require_predictor("goodserve_rectify"))
        self.num_at_risk = 0
        # the goodserve router's per-call deadlines (absent: each request's own deadline)
        self.state = ctx.shared_state("goodserve", lambda: {"call_deadline_s": {}, "calls": {}})

    def act(self, cluster: ClusterView, now_s: float) -> list[Action]:
        p, est = self.params, self.est
        reps = [r for pool in cluster.pools if pool.role == "mixed" for r in pool.active_replicas]
        limit = cluster.max_migrations_per_replica
        busy = {r.id for r in reps if limit is not None and cluster.num_migrations_at(r.id) >= limit}
        risky = []
        for rep in reps:
            if rep.id in busy:
                continue
            rep.sync()  # its requests' token counts, exact mid-stretch (KV views bring only the KV up to now)
            for req in rep.running:
                if not req.is_decoding or req.deadline_s is None or cluster.is_migrating(req.id):
                    continue
                deadline = self.state["call_deadline_s"].get(req.id, req.deadline_s)
                here = est.estimate_s(rep, req)
                if now_s + here > deadline - p.risk_margin_s:
                    risky.append((deadline - now_s - here, req.id, req, rep, here, deadline))
        self.num_at_risk += len(risky)
        risky.sort(key=lambda x: (x[0], x[1]))
        actions: list[Action] = []
        for _slack, _rid, req, src, here, deadline in risky:
            if len(actions) >= p.max_moves_per_period:
                break
            if src.id in busy:
                continue
            move = self._target(cluster, req, src, reps, busy, now_s, here, deadline)
            if move is None:
                continue
            dst, recompute = move
            busy.update((src.id, dst.id))
            actions.append(Migrate(req.id, dst.id, live=p.live, recompute=recompute))
        return actions

    def _target(self, cluster: ClusterView, req: Any, src: Any, reps: list, busy: set, now_s: float,
                here_s: float, deadline_s: float) -> tuple[Any, bool] | None:
        est = self.est
        kv_bytes = req.context_tokens * src.kv.bytes_per_block / src.kv.block_size
        copy_s = cluster.migration_copy_s(kv_bytes)
        options = []
        for dst in reps:
            if dst.id == src.id or dst.id in busy:
                continue
            rate = est.prefill_rate(dst)
            reprefill_s = req.context_tokens / rate
            fits = dst.kv.blocks_for(req.context_tokens + 1) <= dst.kv.num_free_blocks
            recompute = not fits or reprefill_s < copy_s
            if recompute:  # queued behind the prompts there, then prefilled again
                t = est.estimate_s(dst, req, extra_wait_s=reprefill_s, moving=True)
            else:  # joins the running batch after the copy
                t = est.estimate_s(dst, req, extra_wait_s=copy_s - dst.pending_prefill_tokens / rate, moving=True)
            if t < here_s and now_s + t <= deadline_s:
                options.append((est.capability(dst), t, dst.id, dst, recompute))
        if not options:
            return None
        low = min(o[0] for o in options) * (1 + self.params.capability_tolerance)
        best = min((o for o in options if o[0] <= low), key=lambda o: (o[1], o[2]))
        return best[3], best[4]

    @classmethod
    def example_config(cls) -> dict:
        """GoodServe's router and rectification on agentic chains over A100 + H100 + L40S replicas."""
        return hetero_config("goodserve", rectify=True, num_jobs=60)


POOLS = (("a100", "A100-80GB", 2), ("h100", "H100-SXM", 1), ("l40s", "L40S", 2))


def hetero_config(router: str, rectify: bool, num_jobs: int = 200, sigma: float = 0.5, rate_rps: float = 1.0,
                  deadline_s: float = 30.0, calls_per_job: int = 3, seed: int = 0, pools=POOLS) -> dict:
    """Agentic chains (``calls_per_job`` calls, ShareGPT prompt and answer lengths, 0.5 s tools)
    with one end-to-end deadline each, on a heterogeneous cluster of Llama-3-8B replicas (default:
    2 x A100-80GB, 1 x H100-SXM, 2 x L40S), a noisy length predictor (log error ``sigma``) and
    KV migrations over 100 GbE."""
    cluster: dict[str, Any] = {
        "router": {"name": router},
        "predictor": {"name": "noisy", "sigma": sigma},
        "transfer": {"link": "ethernet-100g"},
        "pools": [{"name": name, "num_replicas": n, "hardware": {"device": device, "model": "Llama-3-8B"},
                   "cost_model": "analytic", "scheduler": {"name": "vllm_v1"}, "kv": {"name": "paged"}}
                  for name, device, n in pools],
    }
    if rectify:
        cluster["controllers"] = [{"name": "goodserve_rectify"}]
    return {
        "seed": seed,
        "workload": {"name": "agentic", "num_jobs": num_jobs, "rate_rps": rate_rps, "shape": "chain",
                     "calls_per_job": calls_per_job, "tool_time_s": 0.5, "deadline_s": deadline_s,
                     "lengths": {"file": DATA}},
        "cluster": cluster,
        "slo": {"ttft_s": 5.0, "tpot_s": 0.2},
        "engine": {"progress": False},
    }
