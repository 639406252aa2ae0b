"""Output-length predictors: what each predicts, that policies get one through their context,
that the engine tells it the truth at finish, and that runs with one repeat exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policies.predictors.bucket import BucketParams, BucketPredictor
from policies.predictors.history import HistoryParams, HistoryPredictor
from policies.predictors.noisy import NoisyParams, NoisyPredictor
from policies.predictors.oracle import OraclePredictor
from sim.api import simulate
from sim.config import from_dict
from sim.engine.request import Request
from sim.engine.seams import BuildContext, Predictor
from sim.errors import ConfigError
from tests.conftest import same_value
from tests.plugins.predicted_shortest import BUILT
from tests.plugins.predicted_shortest import NAME as PROBE


def _ctx(seed: int = 0) -> BuildContext:
    return BuildContext(rng=np.random.default_rng(seed), oracle=True, where="cluster.predictor")


def _req(i: int, out: int, app: str | None = None) -> Request:
    return Request(id=i, arrival_s=0.0, input_tokens=100, output_tokens=out, app=app)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a if k != "wall_s")


def _config(predictor: dict | None, n: int = 200) -> dict:
    cluster = {"router": PROBE, "pools": [{"name": "main", "num_replicas": 2,
                                           "cost_model": {"name": "constant", "step_s": 0.01},
                                           "kv": {"name": "paged", "num_blocks": 4000}}]}
    if predictor is not None:
        cluster["predictor"] = predictor
    return {"seed": 3, "workload": {"name": "synthetic", "num_requests": n, "rate_rps": 40.0,
                                    "output_tokens": 32, "output_tokens_max": 512},
            "cluster": cluster, "engine": {"progress": False}}


def test_every_predictor_implements_the_seam():
    for cls, params in ((OraclePredictor, None), (NoisyPredictor, NoisyParams()), (HistoryPredictor, HistoryParams()),
                        (BucketPredictor, BucketParams())):
        assert isinstance(cls(params, _ctx()), Predictor)


def test_oracle_predicts_the_truth_and_a_prediction_is_stable():
    p = OraclePredictor(None, _ctx())
    r = _req(0, 321)
    assert p.predict(r.view) == 321
    noisy = NoisyPredictor(NoisyParams(sigma=1.0), _ctx())
    first = noisy.predict(r.view)
    assert all(noisy.predict(r.view) == first for _ in range(5))


def test_noisy_error_has_the_configured_spread_and_centre():
    p = NoisyPredictor(NoisyParams(sigma=0.5), _ctx(1))
    logs = np.array([math.log(p.predict(_req(i, 1000).view) / 1000) for i in range(4000)])
    assert abs(logs.std() - 0.5) < 0.03 and abs(np.median(logs)) < 0.03
    mean = NoisyPredictor(NoisyParams(sigma=0.5, unbiased="mean"), _ctx(1))
    preds = np.array([mean.predict(_req(i, 1000).view) for i in range(4000)])
    assert abs(preds.mean() / 1000 - 1) < 0.03
    exact = NoisyPredictor(NoisyParams(sigma=0.0), _ctx(1))
    assert exact.predict(_req(0, 77).view) == 77


def test_history_learns_per_app_quantiles_and_needs_samples_first():
    p = HistoryPredictor(HistoryParams(key="app", quantile=0.5, min_samples=5, default_tokens=99), _ctx())
    assert p.predict(_req(0, 10, app="chat").view) == 99
    for i, out in enumerate([100, 200, 300, 400, 500]):
        p.observe(_req(10 + i, out, app="chat").view, out)
    for i in range(5):
        p.observe(_req(20 + i, 5000, app="code").view, 5000)
    assert p.predict(_req(1, 1, app="chat").view) == 300
    assert p.predict(_req(2, 1, app="code").view) == 5000
    assert p.predict(_req(3, 1, app="other").view) == 99


def test_history_window_forgets_old_outputs():
    p = HistoryPredictor(HistoryParams(key="all", window=3, min_samples=1), _ctx())
    for i, out in enumerate([1000, 1000, 1000, 10, 10, 10]):
        p.observe(_req(i, out).view, out)
    assert p.predict(_req(99, 1).view) == 10


def test_bucket_accuracy_and_neighbour_confusion():
    params = BucketParams(edges=[100, 200, 400, 800], accuracy=0.7, neighbour_share=1.0, point="upper")
    p = BucketPredictor(params, _ctx(2))
    preds = [p.predict(_req(i, 300).view) for i in range(3000)]   # true bucket [200, 400)
    share_right = sum(x == 400 for x in preds) / len(preds)
    assert abs(share_right - 0.7) < 0.03
    assert set(preds) == {200, 400, 800}                          # wrong only to neighbours
    low = [p.predict(_req(10_000 + i, 5).view) for i in range(500)]  # bottom bucket: one neighbour
    assert set(low) == {100, 200}


def test_bucket_edges_are_checked():
    with pytest.raises(ConfigError, match="strictly increasing"):
        from_dict(_config({"name": "bucket", "edges": [100, 50]}))
    with pytest.raises(ConfigError, match="cluster.predictor"):
        from_dict(_config({"name": "noisy", "sigma": -1}))


def test_unknown_predictor_names_the_key():
    with pytest.raises(ConfigError) as err:
        from_dict(_config({"name": "psychic"}))
    assert "cluster.predictor" in str(err.value) and "choices" in str(err.value)


def test_a_policy_that_needs_a_predictor_says_so():
    with pytest.raises(ConfigError, match="needs an output-length predictor"):
        simulate(_config(None, n=10))


def test_policies_get_the_predictor_and_the_engine_tells_it_the_truth():
    res = simulate(_config({"name": "history", "key": "all", "min_samples": 20, "default_tokens": 7}))
    assert res.summary["num_completed"] == 200
    router = BUILT[-1]
    predictions = router.seen
    assert len(predictions) == 200
    early = [predictions[i] for i in range(10)]
    assert early == [7] * 10                         # nothing finished yet: the default
    late = [predictions[i] for i in range(150, 200)]
    assert len(set(late)) > 1 and 7 not in late       # learned from finished requests
    assert not router.predictor._predictions     # every prediction dropped at finish


def test_same_seed_same_predictions_and_results():
    cfg = _config({"name": "noisy", "sigma": 0.8})
    a = simulate(cfg)
    seen_a = BUILT[-1].seen
    b = simulate(cfg)
    assert seen_a == BUILT[-1].seen
    assert _same(a.summary, b.summary)


def test_a_predictor_does_not_shift_the_other_streams():
    """Adding a predictor leaves the workload and policy rng streams where they were."""
    base = simulate({**_config({"name": "oracle"}), "cluster": {
        **_config({"name": "oracle"})["cluster"], "router": "round_robin"}})
    none = _config(None)
    none["cluster"]["router"] = "round_robin"
    plain = simulate(none)
    assert _same(base.summary, plain.summary)
