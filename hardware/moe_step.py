"""Step prices of an expert-parallel replica (the EP branch of ``hardware.analytic``).

``ep_step_s`` is one iteration: the analytic model's terms for the busiest data-parallel
group plus the EP MoE layers of ``hardware.moe``; ``ep_decode_run_s`` is a pure-decode run
in numpy, bit-identical per step. A step's routing realisation is ``step_key`` of its shape.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hardware.moe import ExpertParallel

_HASH = 2654435761  # Knuth's multiplicative hash: spreads (tokens, context) over the realisations


def step_key(tokens: int, context: int) -> int:
    """Which routing realisation a step uses: a hash of its shape (pure, so steps replay exactly)."""
    return (tokens * _HASH + context) & 0x7FFFFFFF


def ep_step_s(cm: Any, tokens: int, chunks: int, pairs_p: float, kv_p: int, num_seqs: int,
              num_tokens_d: int, ctx: int) -> float:
    """Iteration seconds of an EP replica: the analytic model's terms for the busiest
    data-parallel group (its ceil share of the sequences) plus the expert-parallel MoE layers."""
    ep: ExpertParallel = cm._ep
    sqrt = math.sqrt
    seqs = chunks + num_seqs
    share = 1.0 if ep.dp == 1 else min(1.0, math.ceil(seqs / ep.dp) / seqs)
    tok = tokens * share
    tc = tok * cm._dense_c
    tm = cm._dense_w + tok * cm._dense_a
    t = sqrt(tc * tc + tm * tm)
    tc = tok * ep.fixed_c
    tm = ep.fixed_w + tok * ep.fixed_a
    t += sqrt(tc * tc + tm * tm)
    routed, comm = ep.moe_s(tokens, step_key(tokens, ctx))
    t += routed + comm
    pairs_d = ctx if num_tokens_d == num_seqs else ctx * num_tokens_d / max(num_seqs, 1)
    tc = (pairs_p * cm._attn_pc + pairs_d * cm._attn_dc) * share
    tm = ((kv_p + ctx) * cm._kv_read + tokens * cm._kv_write) * share
    t += sqrt(tc * tc + tm * tm)
    if cm._ar_count:
        lat, per_token = cm._ar_small if tok <= cm._ar_threshold_tokens else cm._ar_big
        t += cm._ar_count * (lat + tok * per_token)
    t += cm._lo_prefill if chunks else cm._lo_decode
    tc = (chunks + num_tokens_d) * share * cm._head_c
    t += sqrt(tc * tc + cm._head_w * cm._head_w)
    return t + cm._o_it + seqs * share * cm._o_seq


def ep_decode_run_s(cm: Any, num_seqs: int, context_tokens: int, num_steps: int) -> np.ndarray:
    """``num_steps`` pure-decode iterations of an EP replica at once: ``ep_step_s`` evaluated in
    numpy with the same operations in the same order (bit-identical per step), the terms that
    depend only on the batch size memoised per routing realisation."""
    ep: ExpertParallel = cm._ep
    memo = ep._run_memo.get(num_seqs)
    tokens = seqs = num_seqs
    if memo is None:
        share = 1.0 if ep.dp == 1 else min(1.0, math.ceil(seqs / ep.dp) / seqs)
        tok = tokens * share
        tc = tok * cm._dense_c
        tm = cm._dense_w + tok * cm._dense_a
        t0 = math.sqrt(tc * tc + tm * tm)
        tc = tok * ep.fixed_c
        tm = ep.fixed_w + tok * ep.fixed_a
        t0 += math.sqrt(tc * tc + tm * tm)
        heads = []
        for k in range(len(ep._time)):
            routed, comm = ep.moe_s(tokens, k)
            heads.append(t0 + (routed + comm))
        adds = []
        if cm._ar_count:
            lat, per_token = cm._ar_small if tok <= cm._ar_threshold_tokens else cm._ar_big
            adds.append(cm._ar_count * (lat + tok * per_token))
        adds.append(cm._lo_decode)
        tc = num_seqs * share * cm._head_c
        adds.append(math.sqrt(tc * tc + cm._head_w * cm._head_w))
        memo = ep._run_memo[num_seqs] = (share, np.array(heads), tuple(adds), seqs * share * cm._o_seq)
    share, heads, adds, seq_overhead = memo
    ctx = context_tokens + np.arange(num_steps, dtype=np.int64) * num_seqs
    keys = ((tokens * _HASH + ctx) & 0x7FFFFFFF) % len(heads)
    t = heads[keys]
    tc = (0.0 * cm._attn_pc + ctx * cm._attn_dc) * share
    tm = (ctx * cm._kv_read + tokens * cm._kv_write) * share
    t = t + np.sqrt(tc * tc + tm * tm)
    for a in adds:
        t = t + a
    return t + cm._o_it + seq_overhead
