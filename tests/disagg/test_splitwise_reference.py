"""Splitwise as its reference simulator runs it (``mode: reference`` of the scheduler, router
and hand-off): whole prompts first, token machine picked at arrival, a mixed pool."""

from __future__ import annotations

from sim import simulate
from sim.config import from_dict
from tests.conftest import make_config_dict
from tests.disagg.test_splitwise import splitwise_dict

COST = {"name": "constant", "step_s": 0.01, "per_prefill_token_s": 2e-5}


def _mixed(mode: str, rate: float = 2.0, n: int = 200) -> dict:
    data = make_config_dict(scheduler={"name": "splitwise", "mode": mode}, cost=COST, num_blocks=20000,
                            workload={"name": "synthetic", "num_requests": n, "rate_rps": rate, "input_tokens": 1500,
                                      "input_tokens_max": 6000, "output_tokens": 50, "output_tokens_max": 200})
    data["output"] = {"record_steps": True}
    return data


def test_reference_runs_whole_prompts_before_tokens():
    ref, chunked = simulate(_mixed("reference")), simulate(_mixed("chunked"))
    big = ref.requests["input_tokens"].max()
    assert big > 2048 and ref.steps["prefill_tokens"].max() == big  # a whole prompt over the cap, alone
    assert chunked.steps["prefill_tokens"].max() <= 2048
    # prompts go first: decodes wait out whole prompts (longer stalls, shorter TTFT)
    assert ref.summary["itl_max_s"] > 0.01 + 2048 * 2e-5 > chunked.summary["itl_max_s"]
    assert ref.summary["ttft_p50_s"] < chunked.summary["ttft_p50_s"]
    assert (ref.requests["state"] == "finished").all()


def _ref(num_prompt=1, num_token=2, token_blocks=20000, max_pending=8192, workload=None) -> dict:
    data = splitwise_dict(num_prompt, num_token, token_blocks, workload, max_pending)
    data["cluster"]["router"]["mode"] = "reference"
    data["cluster"]["handoff"] = {"name": "splitwise", "mode": "reference"}
    for pool in data["cluster"]["pools"]:
        pool["scheduler"] = {"name": "splitwise", "mode": "reference"}
    return data


def test_borrowed_token_machine_still_ships_kv():
    # 40 x 3000-token prompts at once: the prompt machine fills, a token machine is borrowed
    # into the mixed pool for prompts, and the KV still moves to the token machine picked at arrival
    df = simulate(from_dict(_ref())).requests
    assert (df["state"] == "finished").all()
    borrowed = df[df["first_replica"] != 0]  # replica 0 is the prompt machine
    assert len(borrowed) > 0
    assert (borrowed["transfer_s"] > 0).any()  # shipped from a borrowed machine
    # the default mode runs borrowed requests end to end (no KV copy)
    default = simulate(from_dict(splitwise_dict(1, 2))).requests
    assert (default.loc[default["first_replica"] != 0, "transfer_s"] == 0).all()


def test_full_token_machines_make_the_prompt_machine_mixed():
    wl = {"name": "synthetic", "num_requests": 5, "rate_rps": 1.0, "input_tokens": 3000, "output_tokens": 20}
    df = simulate(from_dict(_ref(num_token=1, token_blocks=50, workload=wl))).requests
    assert (df["state"] == "finished").all()
    assert (df["pool"] == "prompt").all() and (df["transfer_s"] == 0).all()
