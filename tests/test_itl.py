"""The ITL histogram: exact mean/max/count, percentiles within one bin, a bounded buffer on every path."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engine.itl import REL_WIDTH, ItlHistogram
from tests.cluster_run import run_cluster
from tests.conftest import make_config_dict


def test_percentiles_within_bin_width_and_exact_moments():
    rng = np.random.default_rng(0)
    singles = rng.lognormal(-4, 1.0, size=50_000)
    chunk = rng.lognormal(-3, 0.5, size=2000)
    h = ItlHistogram()
    for g in singles:
        h.add(float(g))
    h.add_many(chunk, 7)
    values = np.concatenate([singles, np.repeat(chunk, 7)])
    assert h.count == len(values)
    assert h.mean_s() == pytest.approx(values.mean(), rel=1e-12)
    assert h.max_s == values.max()
    for q, got in zip((50, 90, 99), h.percentiles((50, 90, 99)), strict=True):
        exact = np.percentile(values, q, method="inverted_cdf")
        assert got == pytest.approx(exact, rel=1.5 * REL_WIDTH)


def test_empty():
    h = ItlHistogram()
    assert np.isnan(h.mean_s()) and all(np.isnan(h.percentiles((50, 99))))


# ---------------------------------------------------------------------------- bounded buffer on the stepping path

PERCENTILES = (50, 90, 95, 99)
# the stepping run of ``_stepping_config`` as the unbounded buffer (before the checkpoints) reported it
BEFORE = {"itl_mean_s": 0.011230923564224608, "itl_p50_s": 0.009995555460209787,
          "itl_p90_s": 0.016053127623468964, "itl_p95_s": 0.01822583768589653,
          "itl_p99_s": 0.01998124874551629, "itl_max_s": 0.029279999999999973}


def _stepping_config() -> dict:
    """3,000 requests, ~600k gaps, every iteration stepped (no fast path)."""
    return make_config_dict(
        num_replicas=2, engine={"fast_forward": False, "progress": False},
        workload={"name": "synthetic", "num_requests": 3000, "rate_rps": 40.0, "input_tokens": 32,
                  "input_tokens_max": 512, "output_tokens": 100, "output_tokens_max": 300})


def _run_sampled(config: dict, flush_at: int | None, every_s: float = 0.25):
    """Run ``config``; sample the ITL buffer length every ``every_s`` simulated seconds."""
    samples: list[int] = []

    def setup(cluster):
        itl = cluster.recorder.itl
        if flush_at is not None:
            itl.flush_at = flush_at

        def sampler():
            while not cluster.all_done.triggered:
                samples.append(itl.num_buffered)
                yield cluster.env.timeout(every_s)

        cluster.env.process(sampler())

    cluster = run_cluster(config, setup)
    return cluster, samples


def test_stepping_run_never_buffers_more_than_the_flush_bound():
    flush_at = 4096
    cluster, samples = _run_sampled(_stepping_config(), flush_at)
    itl = cluster.recorder.itl
    max_batch = max(r.scheduler.params.max_num_seqs for r in cluster.replicas)
    bound = flush_at + max_batch  # a checkpoint runs before each iteration adds its tokens
    assert len(samples) > 100 and max(samples) <= bound
    assert itl.num_buffered <= bound
    df = cluster.recorder.requests_frame()
    assert itl.count == int((df["num_output_tokens"] - 1).clip(lower=0).sum()) > 100 * flush_at


def test_default_bound_holds_and_percentiles_are_unchanged():
    cluster, samples = _run_sampled(_stepping_config(), None)
    itl = cluster.recorder.itl
    assert max(samples) <= itl.flush_at + 256 and itl.num_buffered <= itl.flush_at + 256
    got = dict(zip([f"itl_p{q}_s" for q in PERCENTILES], itl.percentiles(PERCENTILES), strict=True))
    got["itl_max_s"] = itl.max_s
    assert got == {k: v for k, v in BEFORE.items() if k != "itl_mean_s"}
    assert itl.mean_s() == pytest.approx(BEFORE["itl_mean_s"], rel=1e-12)


def test_flush_bound_does_not_change_the_histogram():
    a, _ = _run_sampled(_stepping_config(), 1000)
    b, _ = _run_sampled(_stepping_config(), 1 << 40)  # never flushes before the summary: the old behaviour
    # nothing reached the bins before the summary (a stepped iteration books the gaps its decodes
    # share as one weighted value, so far fewer values are buffered than tokens came out)
    assert b.recorder.itl.num_buffered > 10_000 and not b.recorder.itl.counts.any()
    assert a.recorder.itl.percentiles(PERCENTILES) == b.recorder.itl.percentiles(PERCENTILES)
    assert np.array_equal(a.recorder.itl.counts, b.recorder.itl.counts)
    assert a.recorder.itl.max_s == b.recorder.itl.max_s
    assert a.recorder.itl.mean_s() == pytest.approx(b.recorder.itl.mean_s(), rel=1e-12)


# ---------------------------------------------------------------------------- the exact, order-independent mean

def _exact_mean(values, weights) -> float:
    from fractions import Fraction
    total = sum((Fraction(float(v)) * int(w) for v, w in zip(values, weights, strict=True)), Fraction(0))
    return float(total / int(sum(weights)))


def test_exact_sum_is_the_correctly_rounded_mean_whatever_the_order_and_grouping():
    from sim.engine.itl import ExactSum
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.lognormal(-4, 2.0, 3000), [0.0, 5e-320, 1e-310, 3.0e3, 1e-7], -rng.random(5)])
    weights = rng.integers(1, 300, len(values)).astype(float)
    want = _exact_mean(values, weights)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(values))
        s = ExactSum()
        for part in np.array_split(order, 7):
            s.add(values[part], weights[part])
        assert s.mean(int(weights.sum())) == want
    one_by_one = ExactSum()  # each weighted value as that many unweighted copies
    one_by_one.add(np.repeat(values, weights.astype(int)), None)
    assert one_by_one.mean(int(weights.sum())) == want


def test_exact_sum_blocks_large_weights_and_keeps_non_finite_values():
    from sim.engine.itl import ExactSum
    values = np.full(70_000, 0.1)
    s = ExactSum()
    s.add(values, np.full(len(values), float(1 << 20)))  # blocks of 64 terms keep each sum under 2^53
    assert s.mean(len(values) << 20) == 0.1
    s.add(np.array([np.inf]), None)
    assert s.mean(1) == np.inf


def test_histogram_mean_is_independent_of_flush_boundaries_and_weights():
    rng = np.random.default_rng(2)
    gaps = rng.lognormal(-4, 1.0, 20_000)
    a, b = ItlHistogram(flush_at=1000), ItlHistogram()
    for g in gaps:
        a.add(float(g))
    a.checkpoint()
    half = len(gaps) // 2
    b.add_many(gaps[half:], 1)  # the other order, in chunks
    b.add_many(gaps[:half], 1)
    assert a.mean_s() == b.mean_s() == _exact_mean(gaps, np.ones(len(gaps)))


@pytest.mark.parametrize("fast_forward", [False, True])
def test_stepped_gaps_booked_together_equal_the_token_times(fast_forward):
    """A stepped iteration books the gap its decodes share once, with their number as its weight
    (``Replica._apply``): the histogram's count, max and exact mean, and every request's largest
    gap, are those of the gaps between its recorded token times."""
    from fractions import Fraction

    config = make_config_dict(
        num_replicas=2, engine={"fast_forward": fast_forward, "progress": False},
        output={"record_token_times": True},
        workload={"name": "synthetic", "num_requests": 300, "rate_rps": 30.0, "input_tokens": 32,
                  "input_tokens_max": 512, "output_tokens": 60, "output_tokens_max": 200})
    cluster = run_cluster(config)
    gaps = []
    largest = {}
    for rid, times in cluster.recorder.token_times.items():
        mine = [b - a for a, b in zip(times[:-1], times[1:], strict=True)]
        gaps.extend(mine)
        largest[rid] = max(mine, default=0.0)
    itl = cluster.recorder.itl
    assert itl.count == len(gaps) > 10_000
    assert itl.max_s == max(gaps)
    assert itl.mean_s() == float(sum(map(Fraction, gaps), Fraction(0)) / len(gaps))
    df = cluster.recorder.requests_frame()
    assert dict(zip(df["id"], df["itl_max_s"], strict=True)) == largest
