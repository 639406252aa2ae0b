"""Expert parallelism in the analytic model: routing statistics, placement, JANUS assignment, purity."""

from types import SimpleNamespace

import numpy as np
import pytest

from hardware.analytic import AnalyticCostModel, AnalyticParams
from hardware.moe import ExpertParallelParams, gpu_loads, inclusion_probs
from sim.errors import ConfigError


def make_cm(model="Qwen3-30B-A3B", tp=1, **ep):
    hw = SimpleNamespace(device="H100-SXM", model=model, tp=tp, pp=1, weight_dtype="bf16", kv_dtype="bf16")
    params = AnalyticParams(expert_parallel=ExpertParallelParams(**ep) if ep else None)
    return AnalyticCostModel(params, hw)


@pytest.mark.parametrize("model,ep", [("Qwen3-30B-A3B", 8), ("Mixtral-8x7B", 8)])
def test_uniform_routing_matches_touched_experts_formula(model, ep):
    tp_model = make_cm(model)
    ep_model = make_cm(model, ep=ep, routing="uniform", realisations=64)
    for tokens in (1, 2, 4, 16, 64):
        expected = tp_model.expert_weight_bytes(tokens)
        got = ep_model.expert_weight_bytes(tokens)
        assert got == pytest.approx(expected, rel=0.04), tokens


def test_inclusion_probabilities_sum_to_k_and_cap_at_one():
    pop = 1.0 / np.arange(1, 9) ** 3.0
    pi = inclusion_probs(pop, 2)
    assert pi.sum() == pytest.approx(2.0)
    assert pi.max() <= 1.0 and pi[0] == pytest.approx(1.0)


def test_skewed_a_max_rises_with_batch_and_saturates_near_experts_per_gpu():
    cm = make_cm(ep=8, routing="zipf", zipf_s=1.2, noise_sigma=0.3)
    x = cm._ep
    values = [x.mean_a_max(b) for b in (1, 4, 16, 64, 100, 200, 400)]
    assert all(b >= a - 0.05 for a, b in zip(values, values[1:], strict=False))  # rises with batch
    per_gpu = 128 // 8
    assert values[0] < 0.4 * per_gpu
    assert values[4] >= 0.85 * per_gpu and values[-1] <= per_gpu  # saturates near E / n_moe


def test_janus_assignment_lowers_a_max_against_random():
    common = dict(ep=8, routing="zipf", zipf_s=1.0, noise_sigma=0.3, spare_slots=4, realisations=32)
    janus = make_cm(**common, replica_choice="least_loaded")._ep
    rand = make_cm(**common, replica_choice="random")._ep
    for tokens in (8, 16, 32, 64):
        assert janus.mean_a_max(tokens) < rand.mean_a_max(tokens), tokens


def test_split_replicas_load_every_host_and_least_loaded_balances():
    hosts = [[0], [1], [0, 1]]
    counts = np.array([[3, 0, 5]])
    a, t = gpu_loads(counts, hosts, 2, "least_loaded", np.random.default_rng(0))
    assert a.tolist() == [[1.0, 1.0]] and t.sum() == 8
    a, t = gpu_loads(counts, hosts, 2, "split", np.random.default_rng(0))
    assert a.tolist() == [[2.0, 1.0]] and t.tolist() == [[5.5, 2.5]]


def test_ep_steps_are_pure_and_decode_runs_exact():
    cm = make_cm(ep=8, routing="zipf", noise_sigma=0.5)
    one = cm.step_time_s([(300, 0)], 40, 40, 40 * 700)
    assert cm.step_time_s([(300, 0)], 40, 40, 40 * 700) == one
    run = cm.decode_step_times_s(32, 32 * 500, 20)
    each = [cm.step_time_s((), 32, 32, 32 * 500 + i * 32) for i in range(20)]
    assert run.tolist() == each
    assert len(set(each)) > 1  # the per-step noise shows
    # the list form the fast path uses takes the same EP route, short runs included
    for steps in (3, 20, 40):
        expect = [cm.step_time_s((), 7, 7, 3000 + i * 7) for i in range(steps)]
        assert cm.decode_step_times_list(7, 3000, steps) == expect, steps


def test_dp_attention_needs_all_to_all_and_more_nodes_cost_more():
    tp_attn = make_cm(tp=8, ep=8)
    dp_attn = make_cm(tp=1, ep=8)
    assert tp_attn._ep.a2a_s(100) == 0.0 and dp_attn._ep.a2a_s(100) > 0
    big = make_cm("DeepSeek-V3", ep=32, a2a="normal")._ep
    two = make_cm("DeepSeek-V3", ep=32, a2a="two_phase")._ep
    assert two.a2a_s(1000) < big.a2a_s(1000)
    assert make_cm(ep=8).num_gpus == 8


def test_ep_memory_holds_a_share_of_the_experts():
    full = make_cm()
    ep = make_cm(ep=8)
    spare = make_cm(ep=8, spare_slots=4)
    assert ep.weight_bytes_per_gpu < full.weight_bytes_per_gpu / 4
    assert spare.weight_bytes_per_gpu > ep.weight_bytes_per_gpu


@pytest.mark.parametrize("kwargs,model,key", [
    ({"ep": 6}, "Qwen3-30B-A3B", "cost_model.expert_parallel.ep"),
    ({"ep": 8}, "Llama-3-8B", "cost_model.expert_parallel"),
    ({"ep": 8, "inter_node_link": "ib-xyz"}, "Qwen3-30B-A3B", "cost_model.expert_parallel.inter_node_link"),
])
def test_bad_ep_config_names_the_key(kwargs, model, key):
    with pytest.raises(ConfigError) as err:
        make_cm(model, **kwargs)
    assert key in str(err.value)
