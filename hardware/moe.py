"""Expert parallelism (EP) for the analytic cost model: routing, placement, per-GPU load, all-to-all.

Opt-in: ``cost_model: {name: analytic, expert_parallel: {ep: 8, ...}}``. Without it the
analytic model keeps its tensor-parallel experts with uniform routing. With it a replica is
``ep`` GPUs: attention runs tensor-parallel over ``hardware.tp`` GPUs in ``ep / tp``
data-parallel groups (``tp = ep``: TP attention; ``tp = 1``: DP attention, DeepSeek/SGLang),
and each MoE layer's routed experts are spread over the ``ep`` GPUs::

    per MoE layer, one step of T tokens (routing drawn from the popularity model)
      c[e]  tokens routed to expert e         ~ Binomial(T, pi_e)   pi_e = P(e in a token's top-k)
      host  expert -> GPU (placement; spare slots replicate the hottest experts)
      a_g   distinct experts activated on GPU g,  t_g  tokens (token-expert pairs) on GPU g
      GPU g time = roofline(2 t_g P_e / peak,  (a_g P_e bytes + t_g act) / bw)
      MoE layer  = max_g GPU time                       (the slowest GPU sets the pace)
                 + dispatch + combine all-to-all of the busiest GPU's t_max tokens on its link

Routing: ``uniform`` (pi_e = k/E, so E[distinct experts] = E(1 - (1 - k/E)^T): the touched
experts formula) or ``zipf`` (popularity ~ 1 / rank^s, a per-layer random rank order), with
per-step lognormal noise of ``noise_sigma`` on the popularity. Marginals are exact; the
draws ignore the correlation between experts of one token (a token's k experts are distinct).

Speed: per model shape the cost model tabulates, at init, ``realisations`` draws for each of
``sample_layers`` layers on a grid of token counts (vectorised numpy); a step interpolates
in that table, and picks the realisation from its own shape (tokens, context), so a step's
price is a pure function of the batch (fast-forward stretches stay exact).

All-to-all (only with ``ep / tp > 1`` data-parallel groups; with TP attention every GPU
has every token and the combine is the TP all-reduce already priced): each token-expert
pair moves ``hidden x dispatch_bytes`` to its expert's GPU and ``hidden x combine_bytes``
back. ``a2a``: ``low_latency`` (DeepEP's pure-RDMA kernels: every pair not on the own GPU
goes over the NIC), ``normal`` (peers in the node over NVLink, others over the NIC, both at
once), ``two_phase`` (JANUS / DeepEP normal: aggregate within the node over NVLink, then one
copy per token and destination node over the NIC). Checked against DeepEP's published
low-latency figures (``hardware.calibrate``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hardware.links import get_link
from hardware.models import dtype_bytes
from sim.errors import ConfigError
from sim.schema import param


@dataclass
class ExpertParallelParams:
    """Expert parallelism: degree, routing model, placement and all-to-all."""

    ep: int = param(8, ge=1, doc="GPUs the experts are spread over (= the replica's GPUs)")
    routing: Literal["uniform", "zipf"] = param("uniform", doc="expert popularity model")
    zipf_s: float = param(1.0, ge=0, doc="Zipf exponent of expert popularity (routing: zipf)")
    noise_sigma: float = param(0.0, ge=0, doc="per-step lognormal noise on popularity")
    placement: Literal["contiguous", "round_robin", "balanced"] = param(
        "contiguous", doc="expert -> GPU: blocks, round robin, or greedy by expected load (EPLB-like)")
    spare_slots: int = param(0, ge=0, doc="extra expert slots per GPU, filled with replicas of the hottest experts")
    replica_choice: Literal["split", "random", "least_loaded"] = param(
        "least_loaded", doc="replicated expert: split tokens over replicas, one random host, or the host "
                            "with fewest activated experts so far (JANUS activation scheduler)")
    a2a: Literal["low_latency", "normal", "two_phase"] = param("normal", doc="all-to-all algorithm")
    inter_node_link: str = param("ib-ndr", doc="hardware.links link between nodes (one NIC per GPU)")
    dispatch_bytes: float = param(2.0, gt=0, doc="bytes per element dispatched (fp8 ~1.03 with scales)")
    combine_bytes: float = param(2.0, gt=0, doc="bytes per element combined")
    realisations: int = param(16, ge=1, doc="routing draws tabulated per token count")
    sample_layers: int = param(4, ge=1, doc="MoE layers drawn (the rest are statistically alike)")
    seed: int = param(0, ge=0, doc="seed of the routing table")


def inclusion_probs(popularity: np.ndarray, k: int) -> np.ndarray:
    """P(expert in a token's top-k) for sampling k of E without replacement by ``popularity``:
    k x p capped at 1 with the excess given to the rest (water-filling), so they sum to k."""
    p = np.asarray(popularity, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    pi = np.minimum(1.0, k * p)
    for _ in range(8):
        capped = pi >= 1.0
        left = k - capped.sum(axis=-1, keepdims=True)
        rest = np.where(capped, 0.0, p)
        pi = np.where(capped, 1.0, left * rest / np.maximum(rest.sum(axis=-1, keepdims=True), 1e-300))
        if not (pi > 1.0 + 1e-12).any():
            break
    return np.minimum(pi, 1.0)


def place_experts(num_experts: int, num_gpus: int, placement: str, popularity: np.ndarray,
                  spare_slots: int) -> list[list[int]]:
    """Hosts of each expert: ``num_experts / num_gpus`` slots per GPU, plus ``spare_slots`` per GPU
    holding extra replicas of the experts with the highest expected load per replica."""
    per = num_experts // num_gpus
    if placement == "round_robin":
        hosts = [[e % num_gpus] for e in range(num_experts)]
    elif placement == "contiguous":
        hosts = [[e // per] for e in range(num_experts)]
    else:  # balanced: hottest first onto the GPU with the least expected load (LPT), per slots
        load = np.zeros(num_gpus)
        slots = np.full(num_gpus, per)
        hosts = [[] for _ in range(num_experts)]
        for e in np.argsort(-popularity, kind="stable"):
            g = int(np.argmin(np.where(slots > 0, load, np.inf)))
            hosts[e].append(g)
            load[g] += popularity[e]
            slots[g] -= 1
    if spare_slots:
        free = {g: spare_slots for g in range(num_gpus)}
        for _ in range(spare_slots * num_gpus):
            e = int(np.argmax([popularity[i] / len(hosts[i]) for i in range(num_experts)]))
            cands = [g for g in free if free[g] > 0 and g not in hosts[e]]
            if not cands:
                break
            g = min(cands, key=lambda x: (-free[x], x))
            hosts[e].append(g)
            free[g] -= 1
    return hosts


def gpu_loads(counts: np.ndarray, hosts: list[list[int]], num_gpus: int, choice: str,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(activated experts a, token-expert pairs t) per GPU for routing ``counts`` [..., E].

    Single-replica experts go to their host; then each activated multi-replica expert goes,
    per ``choice``, to the host with the fewest activated experts so far (JANUS), to a random
    host, or is split evenly over all its hosts (each of which then loads it)."""
    shape = counts.shape[:-1]
    flat = counts.reshape(-1, counts.shape[-1])
    n = flat.shape[0]
    single = [e for e, h in enumerate(hosts) if len(h) == 1]
    multi = [e for e, h in enumerate(hosts) if len(h) > 1]
    host = np.array([hosts[e][0] for e in single], dtype=np.int64)
    sub = flat[:, single]
    # per GPU: its single-host experts activated, and their tokens (integer sums, exact as floats:
    # what a one-hot matrix product gives, without BLAS's threads for a few small sums)
    a = np.zeros((n, num_gpus))
    t = np.zeros((n, num_gpus))
    for g in range(num_gpus):
        cols = sub[:, host == g]
        if cols.shape[1]:
            a[:, g] = np.count_nonzero(cols, axis=1)
            t[:, g] = cols.sum(axis=1)
    rows = np.arange(n)
    # hottest multi-replica experts first, as the greedy balances best that way
    order = sorted(multi, key=lambda e: -flat[:, e].sum())
    for e in order:
        c = flat[:, e].astype(np.float64)
        act = c > 0
        h = np.asarray(hosts[e])
        if choice == "split":
            share = c / len(h)
            a[:, h] += act[:, None]
            t[:, h] += share[:, None]
            continue
        if choice == "random":
            g = h[rng.integers(0, len(h), size=n)]
        else:
            g = h[np.argmin(a[:, h] + t[:, h] * 1e-9, axis=1)]  # ties: fewer tokens
        a[rows, g] += act
        t[rows, g] += c
    return a.reshape(*shape, num_gpus), t.reshape(*shape, num_gpus)


class ExpertParallel:
    """Per-step MoE time of one replica with expert parallelism (built by ``AnalyticCostModel``)."""

    _loop_table = False  # tests: build the table one grid point at a time (the general path)

    def __init__(self, p: ExpertParallelParams, cm: Any):
        m, d = cm.model, cm.device
        self.params = p
        if not m.is_moe:
            raise ConfigError(f"{m.name} is not a mixture-of-experts model", "cost_model.expert_parallel")
        if cm.pp != 1:
            raise ConfigError("expert parallelism is modelled with pp = 1", "hardware.pp")
        if p.ep % cm.tp:
            raise ConfigError(f"ep={p.ep} is not a multiple of tp={cm.tp} (attention TP inside each "
                              "data-parallel group)", "cost_model.expert_parallel.ep")
        if m.num_experts % p.ep:
            raise ConfigError(f"ep={p.ep} does not divide {m.name}'s {m.num_experts} experts",
                              "cost_model.expert_parallel.ep")
        try:
            self.ib = get_link(p.inter_node_link)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0]), "cost_model.expert_parallel.inter_node_link") from None
        self.ep, self.dp = p.ep, p.ep // cm.tp
        self.num_experts, self.top_k = m.num_experts, m.top_k
        self.gpus_per_node = max(1, min(d.gpus_per_node, p.ep))
        self.num_nodes = math.ceil(p.ep / self.gpus_per_node)
        wb = dtype_bytes(cm.weight_dtype)
        cp = cm.params
        from hardware.analytic import ACT_BYTES, gemm_peak_flops

        peak = gemm_peak_flops(d, cm.weight_dtype, cp)
        bw = d.hbm_gbps * 1e9 * cp.memory_efficiency
        self.expert_bytes = m.expert_params * wb
        self._c = 2.0 * m.expert_params / peak  # seconds per token-expert pair
        self._w = self.expert_bytes / bw  # seconds per activated expert
        self._a = (4 * m.moe_intermediate + 2 * m.hidden) * ACT_BYTES / bw  # per pair
        self.num_moe_layers = m.num_moe_layers
        fixed = (m.shared_expert_params + m.router_params) / cm.tp
        self.fixed_c = 2.0 * m.num_moe_layers * fixed / peak
        self.fixed_w = m.num_moe_layers * fixed * wb / bw
        self.fixed_a = m.num_moe_layers * (4 * m.shared_intermediate / cm.tp + 2 * m.hidden) * ACT_BYTES / bw
        routed = m.num_moe_layers * m.num_experts * self.expert_bytes
        per_gpu = m.num_moe_layers * (m.num_experts // p.ep + p.spare_slots) * self.expert_bytes
        self.weight_bytes_per_gpu = (m.weight_bytes(cm.weight_dtype) - routed) / cm.tp + per_gpu
        self.hidden = m.hidden
        self._nvl_bw = (d.nvlink_gbps if d.nvlink_gbps > 0 else d.host_link_measured_gbps) * 1e9
        self._nvl_lat = 2e-6
        self._run_memo: dict[int, tuple] = {}  # decode batch size -> terms (ep_decode_run_s)
        rng = np.random.default_rng(p.seed)
        self._build_popularity(rng)
        self._build_table(rng)

    # ------------------------------------------------------------ routing model and table

    def _build_popularity(self, rng: np.random.Generator) -> None:
        p, e = self.params, self.num_experts
        if p.routing == "zipf":
            base = 1.0 / np.arange(1, e + 1, dtype=np.float64) ** p.zipf_s
        else:
            base = np.ones(e)
        base /= base.sum()
        # each sampled layer ranks the experts in its own random order; layer 0's popularity
        # decides the placement (one placement per model, as the engines deploy it)
        self.layer_pop = np.stack([base[rng.permutation(e)] for _ in range(p.sample_layers)])
        self.hosts = [place_experts(e, self.ep, p.placement, pop, p.spare_slots) for pop in self.layer_pop]

    def _grid(self) -> np.ndarray:
        small = np.arange(1, 33)
        big = np.sort(np.round(32 * 1.25 ** np.arange(1, 40)).astype(np.int64))
        big = big[np.concatenate(([True], big[1:] != big[:-1]))]  # np.unique's values (it imports numpy.ma)
        return np.concatenate([small, big[big > 32]]).astype(np.int64)

    def _build_table(self, rng: np.random.Generator) -> None:
        """Per (realisation, grid tokens): MoE seconds per layer (max over GPUs, averaged over the
        sampled layers), busiest GPU's pairs, a_max and expert weight bytes read per layer."""
        p = self.params
        r, s = p.realisations, p.sample_layers
        grid = self._grid()
        self.grid = grid
        pop = np.broadcast_to(self.layer_pop, (r, s, self.num_experts))
        if p.noise_sigma > 0:
            pop = pop * rng.lognormal(0.0, p.noise_sigma, size=pop.shape)
        pi = inclusion_probs(pop, self.top_k)  # (r, s, E)
        n = len(grid)
        choice_rng = np.random.default_rng(rng.integers(1 << 62))
        # every grid point's draws in one call: the same draws in the same order as one call per
        # grid point (numpy fills the broadcast (grid, r, s, E) array in C order)
        counts = rng.binomial(grid[:, None, None, None], pi)
        if all(len(h) == 1 for hosts in self.hosts for h in hosts) and not self._loop_table:
            # single-host experts: each row's loads are its own sums of integer counts (exact in
            # any order), so all grid points go through gpu_loads at once, layer by layer
            a = np.empty((n, r, s, self.ep))
            t = np.empty((n, r, s, self.ep))
            for layer in range(s):
                a[:, :, layer], t[:, :, layer] = gpu_loads(counts[:, :, layer], self.hosts[layer], self.ep,
                                                           p.replica_choice, choice_rng)
            tc = t * self._c
            tm = a * self._w + t * self._a
            gpu_s = np.sqrt(tc * tc + tm * tm)
            time_s = gpu_s.max(axis=-1).mean(axis=-1).T
            t_max = t.max(axis=-1).mean(axis=-1).T
            a_max = a.max(axis=-1).mean(axis=-1).T
            w_bytes = (a.sum(axis=-1).mean(axis=-1) * self.expert_bytes).T
        else:  # replicated experts: their choice reads the batch (and may draw), one grid point at a time
            time_s = np.empty((r, n))
            t_max = np.empty((r, n))
            a_max = np.empty((r, n))
            w_bytes = np.empty((r, n))
            for j in range(n):
                a = np.empty((r, s, self.ep))
                t = np.empty((r, s, self.ep))
                for layer in range(s):
                    a[:, layer], t[:, layer] = gpu_loads(counts[j, :, layer], self.hosts[layer], self.ep,
                                                         p.replica_choice, choice_rng)
                tc = t * self._c
                tm = a * self._w + t * self._a
                gpu_s = np.sqrt(tc * tc + tm * tm)
                time_s[:, j] = gpu_s.max(axis=-1).mean(axis=-1)
                t_max[:, j] = t.max(axis=-1).mean(axis=-1)
                a_max[:, j] = a.max(axis=-1).mean(axis=-1)
                w_bytes[:, j] = a.sum(axis=-1).mean(axis=-1) * self.expert_bytes
        self._grid_list = [int(x) for x in grid]
        self._time, self._tmax, self._amax, self._wbytes = (x.tolist() for x in (time_s, t_max, a_max, w_bytes))

    # ------------------------------------------------------------ lookups

    def _interp(self, table: list, tokens: float, key: int) -> float:
        """Linear interpolation in token count within one realisation's row (lists: fast scalars)."""
        grid = self._grid_list
        row = table[key % len(table)]
        if tokens <= grid[0]:
            return row[0] * tokens / grid[0]
        j = bisect_left(grid, tokens)
        if j >= len(grid):
            j = len(grid) - 1
        x0, x1 = grid[j - 1], grid[j]
        y0 = row[j - 1]
        return y0 + (row[j] - y0) * (tokens - x0) / (x1 - x0)

    def a_max(self, tokens: float, key: int = 0) -> float:
        """Most activated experts on one GPU for a step of ``tokens`` tokens (one realisation)."""
        return self._interp(self._amax, tokens, key)

    def mean_a_max(self, tokens: float) -> float:
        """``a_max`` averaged over the realisations."""
        return float(np.mean([self.a_max(tokens, k) for k in range(len(self._amax))]))

    def expert_weight_bytes(self, tokens: float) -> float:
        """Expected expert weight bytes read by one step of ``tokens`` tokens (all MoE layers)."""
        return float(np.mean([self._interp(self._wbytes, tokens, k) for k in range(len(self._wbytes))])
                     ) * self.num_moe_layers

    def a2a_s(self, pairs_max: float) -> float:
        """Dispatch + combine seconds per MoE layer when the busiest GPU receives ``pairs_max`` pairs."""
        if self.dp <= 1 or pairs_max <= 0:
            return 0.0
        p = self.params
        return self.one_way_s(pairs_max, p.dispatch_bytes) + self.one_way_s(pairs_max, p.combine_bytes)

    def one_way_s(self, pairs: float, elem_bytes: float) -> float:
        """Seconds of one all-to-all (dispatch or combine) moving ``pairs`` token-expert pairs of
        ``hidden x elem_bytes`` each through the busiest GPU."""
        g, gpn, nodes = self.ep, self.gpus_per_node, self.num_nodes
        nbytes = pairs * self.hidden * elem_bytes
        ib_bw, ib_lat = self.ib.gbps * 1e9, self.ib.latency_s
        mode = self.params.a2a
        if mode == "low_latency":  # pure RDMA: every pair off this GPU goes through the NIC
            return ib_lat + nbytes * (g - 1) / g / ib_bw
        intra = nbytes * (gpn - 1) / g
        inter = nbytes * (g - gpn) / g
        if nodes == 1:
            return self._nvl_lat + intra / self._nvl_bw
        if mode == "normal":  # NVLink and NIC in parallel
            return max(self._nvl_lat, ib_lat) + max(intra / self._nvl_bw, inter / ib_bw)
        # two-phase: one copy per (token, destination node) over the NIC, then fan-out over NVLink
        k = self.top_k
        pairs_remote = k * (nodes - 1) / nodes
        nodes_remote = (nodes - 1) * (1.0 - (1.0 - 1.0 / nodes) ** k)
        dedup = nodes_remote / pairs_remote if pairs_remote > 0 else 1.0
        return self._nvl_lat + ib_lat + inter * dedup / ib_bw + nbytes * (gpn - 1) / gpn / self._nvl_bw

    def remote_s(self, pairs_max: float) -> float:
        """Dispatch + combine seconds per MoE layer between separate attention and expert GPUs: the
        busiest expert GPU's pairs all arrive over ``inter_node_link`` (two-phase: one copy per token
        and expert node, then the fan-out inside the node over NVLink)."""
        if pairs_max <= 0:
            return 0.0
        p = self.params
        nbytes = pairs_max * self.hidden * (p.dispatch_bytes + p.combine_bytes)
        t = 2 * self.ib.latency_s
        if p.a2a != "two_phase":
            return t + nbytes / (self.ib.gbps * 1e9)
        k, nodes, gpn = self.top_k, self.num_nodes, self.gpus_per_node
        dedup = nodes * (1.0 - (1.0 - 1.0 / nodes) ** k) / k
        return t + 2 * self._nvl_lat + nbytes * dedup / (self.ib.gbps * 1e9) + nbytes * (gpn - 1) / gpn / self._nvl_bw

    def held_s(self, tokens: float, key: int) -> float:
        """Seconds an expert pool is busy with ``tokens`` tokens of attention replicas (all MoE
        layers): shared experts and router (tokens spread over the GPUs), the slowest GPU's
        routed experts, and the communication both ways."""
        tok = tokens / self.ep
        tc = tok * self.fixed_c
        tm = self.fixed_w + tok * self.fixed_a
        t = math.sqrt(tc * tc + tm * tm)
        layer = self._interp(self._time, tokens, key)
        comm = self.remote_s(self._interp(self._tmax, tokens, key))
        return t + (layer + comm) * self.num_moe_layers

    def moe_s(self, tokens: float, key: int) -> tuple[float, float]:
        """(routed-expert seconds, all-to-all seconds) of one step over all MoE layers."""
        layer = self._interp(self._time, tokens, key)
        comm = self.a2a_s(self._interp(self._tmax, tokens, key))
        return layer * self.num_moe_layers, comm * self.num_moe_layers

