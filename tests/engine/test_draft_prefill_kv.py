"""A draft model's prefill, first draft round and share of the KV memory (policies/speculators/base.py)."""

from __future__ import annotations

import copy

import pytest

from hardware.analytic import AnalyticCostModel, AnalyticParams
from sim import simulate
from sim.config import HardwareConfig
from tests.cluster_run import run_cluster
from tests.conftest import make_config_dict

HW = {"device": "H100-SXM", "model": "Llama-3-8B"}
DRAFT = "Llama-3.2-1B"
ONE = {"name": "synthetic", "num_requests": 4, "rate_rps": 0.05, "input_tokens": 1024, "output_tokens": 64}


def _config(speculation=None, cost=None, workload=ONE, num_blocks=None):
    data = make_config_dict(workload=workload, cost=cost or {"name": "analytic"}, kv={"num_blocks": num_blocks})
    data["cluster"]["pools"][0]["hardware"] = dict(HW)
    if speculation is not None:
        data["cluster"]["pools"][0]["speculation"] = speculation
    return data


def _fixed(k=3, **extra):
    return {"name": "fixed", "k": k, "acceptance_rate": 0.0, "draft_model": DRAFT, **extra}


def _models():
    target = AnalyticCostModel(AnalyticParams(), HardwareConfig(**HW))
    draft = AnalyticCostModel(AnalyticParams(), HardwareConfig(**{**HW, "model": DRAFT}))
    return target, draft


def test_kv_capacity_leaves_the_draft_its_weights_and_its_kv_share():
    target, draft = _models()
    free = target.kv_capacity_bytes(0.9) - draft.weight_bytes_per_gpu * draft.num_gpus
    tokens = free / (target.kv_bytes_per_token + draft.kv_bytes_per_token)
    alone = run_cluster(_config()).replicas[0].kv.num_blocks
    shared = run_cluster(_config(_fixed())).replicas[0].kv.num_blocks
    assert alone == int(target.kv_capacity_bytes(0.9) // (16 * target.kv_bytes_per_token))
    assert shared * 16 == pytest.approx(tokens, abs=16)  # whole blocks of the target's bytes per block
    assert shared < 0.85 * alone
    # off, a model-free drafter, or a cost model of given capacity: the target's capacity
    assert run_cluster(_config(_fixed(draft_kv=False))).replicas[0].kv.num_blocks == alone
    ngram = {"name": "fixed", "k": 3, "draft_model": "ngram"}
    assert run_cluster(_config(ngram)).replicas[0].kv.num_blocks == alone
    constant = {"name": "constant", "step_s": 0.01, "kv_capacity_tokens": 50_000}
    assert run_cluster(_config(_fixed(), cost=constant)).replicas[0].kv.num_blocks == 50_000 // 16


def test_a_prompt_pays_the_draft_prefill_and_the_first_round_before_its_first_token():
    """One request at a time: TTFT = the target's prefill + the draft model's prefill of the prompt +
    passes 1 .. k - 1 of the first draft round (each over the prompt + j + 1 tokens); the decode steps
    after it are priced as before."""
    k, prompt = 3, ONE["input_tokens"]
    _, draft = _models()
    rows = _requests(_config(_fixed(draft_prefill=False))), _requests(_config(_fixed(k)))
    prefill = draft.step_time_s([(prompt, 0)], 0, 0, 0)
    rounds = sum(draft.step_time_s((), 1, 1, prompt + j + 1) for j in range(1, k))
    for b, s in zip(*rows, strict=True):
        assert s["ttft"] - b["ttft"] == pytest.approx(prefill + rounds, rel=1e-9)
        assert s["decode"] == pytest.approx(b["decode"], rel=1e-9)
    no_round = _requests(_config(_fixed(k, draft_first_round=False)))
    for b, s in zip(rows[0], no_round, strict=True):
        assert s["ttft"] - b["ttft"] == pytest.approx(prefill, rel=1e-9)


def _requests(cfg):
    df = simulate(cfg).requests.sort_values("id")
    assert (df["state"] == "finished").all() and len(df) == ONE["num_requests"]
    return [{"ttft": r.first_token_s - r.arrival_s, "decode": r.finish_s - r.first_token_s}
            for r in df.itertuples()]


def test_chunks_join_the_decodes_first_draft_pass():
    """The speculator prices a chunk next to drafting decodes as the first pass with the chunk less the
    pass without (one forward), and a pass of the chunk alone when nothing drafts."""
    cfg = _config(_fixed(2))
    cluster = run_cluster(cfg)
    spec = cluster.pools[0].speculator
    draft = spec.draft_cost_model

    class View:
        def __init__(self, computed):
            self.num_computed_tokens = computed

    chunks = [(512, 0)]
    alone = spec.draft_prefill_time_s(chunks, [], [], [])
    assert alone == draft.step_time_s(chunks, 0, 0, 0)
    views = [View(100), View(300)]
    joined = spec.draft_prefill_time_s(chunks, views, [2, 2], [])
    assert joined == pytest.approx(draft.step_time_s(chunks, 2, 2, 402) - draft.step_time_s((), 2, 2, 402))
    assert joined < alone  # the pass's fixed costs are paid once
    done = spec.draft_prefill_time_s(chunks, views, [2, 2], [512])
    assert done == pytest.approx(joined + draft.step_time_s((), 3, 3, 404 + 514) - draft.step_time_s((), 2, 2, 404))
    off = copy.deepcopy(cfg)
    off["cluster"]["pools"][0]["speculation"]["draft_prefill"] = False
    assert run_cluster(off).pools[0].speculator.draft_prefill_time_s(chunks, views, [2, 2], [512]) == 0.0
