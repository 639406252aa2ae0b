"""DistServe's trend on a small case: disaggregation wins under a tight TPOT SLO, not a loose one."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

from pd_configs import colocated, distserve, hardware, sharegpt_poisson  # noqa: E402

from sim import simulate  # noqa: E402

HW = hardware("H100-SXM", "Llama-3-8B")


def attainment(config, ttft_s, tpot_s):
    config["slo"] = {"ttft_s": ttft_s, "tpot_s": tpot_s}
    return simulate(config).summary["slo_attainment"]


def test_tight_tpot_favours_disaggregation():
    # 4 GPUs: colocated x4 vs 1 prefill + 3 decode; tight TPOT = ~1.5 decode steps
    w = sharegpt_poisson(12.0, 800)
    colo = attainment(colocated(w, 4, HW), 1.0, 0.012)
    disagg = attainment(distserve(w, 1, 3, HW, HW), 1.0, 0.012)
    assert disagg > colo + 0.1
    assert best_split(w, 1.0, 0.012) == disagg  # 1P+3D is the best split here


def best_split(w, ttft_s, tpot_s):
    """DistServe's best prefill/decode split of the 4 GPUs (the strongest alternative)."""
    return max(attainment(distserve(w, p, 4 - p, HW, HW), ttft_s, tpot_s) for p in (1, 2, 3))


def test_loose_tpot_removes_the_advantage():
    # against every split (the best is 2P+2D here), colocated serving meets the SLOs for more
    w = sharegpt_poisson(32.0, 800)
    colo = attainment(colocated(w, 4, HW), 1.0, 0.1)
    assert colo >= 0.9
    assert colo > best_split(w, 1.0, 0.1) + 0.1
