"""The jinwoong blog's draft-model speculation arms (fid14): same-origin rows, the notes pattern that sets the
pool's speculation and the mapping of vLLM's accepted / drafted ratio to servesim's per-position acceptance."""

from __future__ import annotations

import copy

import pytest

from hardware import corpus_predict as cp
from hardware import fidelity as fid
from hardware.corpus_engines import per_position_acceptance, speculation_for
from policies.speculators.fixed import FixedSpeculator
from sim.api import simulate

SOURCE = "jinwoong_l4_specdecode"


def _rows() -> dict[str, dict]:
    return {r["id"]: r for r in cp.load_corpus() if r["source"] == SOURCE}


def test_the_rows_are_same_origin_with_the_calibration_blog_and_carry_their_speculation():
    rows = _rows()
    assert len(rows) == 24 and fid.split_of(SOURCE) == "same-origin"
    assert fid.origin(SOURCE) == fid.origin("jinwoong_a10g_l4_blog")
    assert "jinwoong_a10g_l4_blog" in fid.CALIBRATION_SOURCES
    assert {r["metric"] for r in rows.values()} == {"median_tpot_ms", "median_ttft_ms"}
    for r in rows.values():
        spec = speculation_for(r)
        assert spec is not None and spec["name"] == "fixed" and spec["draft_model"] == "Qwen2.5-0.5B"
        assert spec["k"] in (1, 3, 5) and 0.70 < spec["acceptance_rate"] < 0.74  # fid14's solved values
        assert cp.closed_loop_sharegpt(r) and cp.stack_for(r) == "vllm_v1_engine"
    spec = speculation_for(rows["jws-5"])  # draft k=3 at concurrency 1: 53.2% accepted / drafted
    assert spec["k"] == 3 and spec["acceptance_rate"] == pytest.approx(0.7161, abs=1e-4)


def test_only_rows_that_state_speculation_get_it():
    baseline = next(r for r in cp.load_corpus() if r["id"] == "jw-19")  # the same sweep's baseline arm
    assert speculation_for(baseline) is None
    assert "speculation" not in cp.serving_config(baseline, "", {})["cluster"]["pools"][0]
    row = _rows()["jws-5"]
    pool = cp.serving_config(row, "", {})["cluster"]["pools"][0]
    assert pool["speculation"] == speculation_for(row)
    assert cp._serving_key(row, {}) != cp._serving_key({**row, "notes": baseline["notes"]}, {})


def test_per_position_acceptance_inverts_the_accepted_over_drafted_ratio():
    assert per_position_acceptance(0.714, 1) == pytest.approx(0.714)
    for k in (2, 3, 5, 8):
        for a in (0.3, 0.6, 0.72, 0.9):
            ratio = sum(a ** i for i in range(1, k + 1)) / k
            assert per_position_acceptance(ratio, k) == pytest.approx(a, abs=1e-9)
    assert per_position_acceptance(0.42, 5) > per_position_acceptance(0.42, 3) > 0.42  # longer runs need more a
    with pytest.raises(ValueError):
        per_position_acceptance(1.2, 3)
    with pytest.raises(ValueError):
        per_position_acceptance(0.5, 0)


@pytest.mark.parametrize("k, ratio", [(3, 0.532), (5, 0.414)])
def test_the_simulator_reproduces_the_measured_ratio_with_the_mapped_acceptance(k, ratio):
    """Run servesim's fixed-k speculator at the mapped a: its own accepted / proposed is the measured r (and
    r itself as a would give a visibly lower ratio, so the test can fail)."""
    cfg = copy.deepcopy(FixedSpeculator.example_config())
    cfg["workload"].update(num_requests=400, output_tokens=64, output_tokens_max=256)
    pool = cfg["cluster"]["pools"][0]

    def measured(a: float) -> float:
        pool["speculation"] = {"name": "fixed", "k": k, "acceptance_rate": a}
        return float(simulate(copy.deepcopy(cfg)).summary["spec_acceptance_rate"])

    assert measured(per_position_acceptance(ratio, k)) == pytest.approx(ratio, abs=0.015)
    assert measured(ratio) < ratio - 0.05


def test_speculation_is_applied_to_the_prediction():
    """The draft k=3 row at concurrency 1 predicts a TPOT well under the baseline arm's (the speculation is
    in the simulation), and a TTFT above it at one client, more so with k = 5: the draft model prefills
    each prompt and drafts its first round before the first token (fid15b)."""
    rows = {r["id"]: r for r in cp.load_corpus()}
    assert cp.predict(rows["jws-5"]) < 0.7 * cp.predict(rows["jw-19"])
    baseline_ttft = cp.predict(rows["jw-23"])
    assert cp.predict(rows["jws-17"]) > 1.1 * baseline_ttft
    assert cp.predict(rows["jws-21"]) > cp.predict(rows["jws-17"]) + 0.005
