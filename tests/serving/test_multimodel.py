"""Multi-model pools (sim.engine.multimodel): model names, rejection with a reason, switches
priced by placement, keep-alive, weights that fit no slice's HBM, and the C2C link shared by
the slices of one chip (the shared-link arithmetic)."""

from __future__ import annotations

import pytest

from hardware.links import LINKS
from hardware.models import get_model
from hardware.weight_tiers import balanced_rho, hybrid_weight_time_s, weight_bytes_read
from sim import simulate

SMALL = ["Llama-3.2-1B", "Qwen2.5-0.5B"]


def make_config(num_replicas: int = 1, serving: dict | None = None, device: str = "GH200-96GB:1g.24gb",
                model: str = "Llama-3.2-1B", workload: dict | None = None, router: str = "model_affinity",
                cost_model: dict | None = None, num_blocks: int | None = 2000) -> dict:
    kv = {"name": "paged", "block_size": 16}
    if num_blocks is not None:
        kv["num_blocks"] = num_blocks
    return {
        "seed": 0,
        "workload": workload or {"name": "synthetic", "num_requests": 20, "rate_rps": 2.0, "input_tokens": 64,
                                 "output_tokens": 16},
        "cluster": {"router": router, "pools": [{
            "name": "p", "num_replicas": num_replicas, "hardware": {"device": device, "model": model},
            "cost_model": cost_model or {"name": "constant", "step_s": 0.01}, "kv": kv,
            "serving": {"models": SMALL[1:], **(serving or {})}}]},
        "engine": {"progress": False},
    }


def trace(tmp_path, rows: list[tuple[float, str]], output_tokens: int = 8) -> dict:
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,input_tokens,output_tokens,model\n"
                    + "".join(f"{t},64,{output_tokens},{m}\n" for t, m in rows))
    return {"name": "trace", "path": str(path)}


def test_trace_column_names_the_model_and_unservable_models_are_rejected_with_a_reason(tmp_path):
    wl = trace(tmp_path, [(0.0, "Llama-3.2-1B"), (0.1, "Qwen2.5-0.5B"), (0.2, "Mixtral-8x7B"), (0.3, "nope")])
    res = simulate(make_config(workload=wl))
    df = res.requests.set_index("id")
    assert list(df["model"]) == ["Llama-3.2-1B", "Qwen2.5-0.5B", "Mixtral-8x7B", "nope"]
    assert list(df["state"]) == ["finished", "finished", "rejected", "rejected"]
    assert df.loc[2, "reject_reason"] == "model_not_served" and df.loc[3, "reject_reason"] == "model_not_served"
    assert res.summary["rejected_by_reason"] == {"model_not_served": 2}


def test_a_model_too_big_for_the_pool_is_rejected_as_not_fitting(tmp_path):
    wl = trace(tmp_path, [(0.0, "Llama-3-8B")])
    cfg = make_config(workload=wl, device="GH200-96GB:1g.12gb", cost_model={"name": "analytic"}, num_blocks=None)
    cfg["cluster"]["pools"][0]["serving"]["models"] = ["Llama-3-8B"]
    res = simulate(cfg)
    assert res.requests.loc[0, "reject_reason"] == "model_does_not_fit"


def test_a_model_that_fits_no_slice_runs_from_grace_slower(tmp_path):
    """Llama-3-8B (16 GB) on an 11 GiB slice: streamed with rho >= its floor, slower than on a
    slice that holds it, and served rather than rejected."""
    wl = trace(tmp_path, [(0.0, "Llama-3-8B")] + [(0.01 * k, "Llama-3-8B") for k in range(1, 4)], 200)
    cfgs = {}
    for device in ("GH200-96GB:1g.12gb", "GH200-96GB:1g.24gb"):
        cfg = make_config(workload=wl, device=device, cost_model={"name": "analytic"}, num_blocks=None,
                          serving={"weights_home": "grace", "stream": True, "rho": 0.0, "switch_overhead_s": 0.0})
        cfg["cluster"]["pools"][0]["serving"]["models"] = ["Llama-3-8B"]
        cfgs[device] = simulate(cfg)
    small, big = cfgs["GH200-96GB:1g.12gb"], cfgs["GH200-96GB:1g.24gb"]
    assert (small.requests["state"] == "finished").all()
    floor = small.models.pools["p"].rho_floor["Llama-3-8B"]
    w = get_model("Llama-3-8B").weight_bytes("bf16")
    assert 0.0 < floor < 1.0 and floor == pytest.approx(1 - (small.models.pools["p"].usable_bytes("Llama-3-8B")
                                                            - 1e9) / w)
    assert big.models.pools["p"].rho_floor["Llama-3-8B"] == 0.0
    assert small.summary["tpot_mean_s"] > big.summary["tpot_mean_s"]  # the big slice ends with rho 0
    c2c_leg = floor * weight_bytes_read(get_model("Llama-3-8B"), "bf16", 1) / (LINKS["nvlink-c2c"].gbps * 1e9)
    assert small.summary["tpot_p50_s"] > c2c_leg
    assert small.summary["c2c_utilisation"] > 0


@pytest.mark.parametrize("num_slices", [1, 2, 4, 7])
def test_per_slice_throughput_follows_the_shared_c2c_link(num_slices):
    """k slices of one GH200 streaming every weight (rho = 1) at once: each iteration moves B
    bytes per slice over the one 346 GB/s C2C link, so a decode step takes latency + k B / BW
    and each slice's tokens/s falls as 1/k (equal shares)."""
    wl = {"name": "synthetic", "num_requests": num_slices, "arrival": {"name": "all_at_once"},
          "input_tokens": 16, "output_tokens": 50}
    cfg = make_config(num_slices, {"weights_home": "grace", "stream": True, "rho": 1.0, "copy_to_hbm": False,
                                   "slices_per_chip": 7}, device="GH200-96GB:1g.12gb", workload=wl,
                      router="c2cserve", cost_model={"name": "constant", "step_s": 1e-4})
    res = simulate(cfg)
    link = LINKS["nvlink-c2c"]
    b = weight_bytes_read(get_model("Llama-3.2-1B"), "bf16", 1)
    expected = link.latency_s + num_slices * b / (link.gbps * 1e9)
    df = res.requests
    assert df["replica"].nunique() == num_slices
    assert df["tpot_s"].to_numpy() == pytest.approx(expected, rel=1e-6)
    assert res.summary["c2c_utilisation"] > 0.95


def test_hybrid_gemm_formula_and_balanced_split():
    w, c2c, hbm = 16e9, 346.0, 1000.0
    rho = balanced_rho(c2c, hbm)
    assert rho * w / (c2c * 1e9) == pytest.approx((1 - rho) * w / (hbm * 1e9))
    assert hybrid_weight_time_s(w, rho, c2c, hbm) < hybrid_weight_time_s(w, 0.0, c2c, hbm)
    assert hybrid_weight_time_s(w, 1.0, c2c / 4, hbm) == pytest.approx(4 * w / (c2c * 1e9))


def test_switch_cost_follows_the_placement(tmp_path):
    """Host memory over C2C: W / 346 GB/s + overhead; storage with a restart: W / 3.65 GB/s +
    overhead + engine start; a resident model: the overhead alone."""
    rows = [(0.0, "Qwen2.5-0.5B"), (20.0, "Llama-3.2-1B"), (40.0, "Qwen2.5-0.5B")]
    w = get_model("Qwen2.5-0.5B").weight_bytes("bf16")
    host = simulate(make_config(workload=trace(tmp_path, rows), serving={"weights_home": "host_memory"}))
    cold = host.requests["cold_start_s"].to_numpy()
    assert cold[0] == pytest.approx(LINKS["nvlink-c2c"].latency_s + w / 346e9 + 0.1)
    assert cold[1] == pytest.approx(0.1) and cold[2] == pytest.approx(0.1)  # both resident in HBM
    ded = simulate(make_config(workload=trace(tmp_path, rows), serving={
        "weights_home": "storage", "switch": "restart", "max_resident": 1}))
    cold = ded.requests["cold_start_s"].to_numpy()
    assert cold[0] == pytest.approx(w / (16.06e9 / 4.4) + 0.1 + 14.2)
    assert cold[1] > 14.2 and cold[2] > 14.2  # one resident model: every switch loads again
    assert ded.summary["serving_num_loads"] == 3 and host.summary["serving_num_loads"] == 1


def test_keep_alive_unloads_an_idle_model(tmp_path):
    rows = [(0.0, "Llama-3.2-1B"), (1.0, "Llama-3.2-1B"), (30.0, "Llama-3.2-1B")]
    short = simulate(make_config(workload=trace(tmp_path, rows), serving={"keep_alive_s": 10.0}))
    never = simulate(make_config(workload=trace(tmp_path, rows), serving={"keep_alive_s": None}))
    assert list(never.requests["cold_start_s"]) == [0.0, 0.0, 0.0]
    cold = short.requests["cold_start_s"].to_numpy()
    assert cold[0] == 0.0 and cold[1] == 0.0 and cold[2] > 0.1  # reloaded after 29 s idle


def test_single_model_pool_with_a_serving_block_and_every_request_accounted():
    res = simulate(make_config(4, workload={"name": "synthetic", "num_requests": 200, "rate_rps": 40.0,
                                            "input_tokens": 64, "output_tokens": 8, "output_tokens_max": 64,
                                            "transforms": [{"name": "assign_models", "models": SMALL,
                                                            "zipf_a": 1.0, "burst_factor": 4.0,
                                                            "on_mean_s": 1.0, "off_mean_s": 2.0}]}))
    df = res.requests
    assert len(df) == 200 and (df["state"] == "finished").all()
    assert set(df["model"]) == set(SMALL)
    assert (df["cold_start_s"] <= df["ttft_s"] + 1e-12).all()


@pytest.mark.parametrize("change, where", [
    ({"models": ["Llama-3.2-1B", "Llama-9B"]}, "cluster.pools[0].serving.models[1]"),
    ({"stream": True, "weights_home": "storage"}, "cluster.pools[0].serving.weights_home"),
    ({"rho": 1.5}, "cluster.pools[0].serving.rho"),
    ({"switch": "reboot"}, "cluster.pools[0].serving.switch"),
])
def test_bad_serving_blocks_name_the_dotted_key(change, where):
    from sim.errors import ConfigError

    cfg = make_config()
    cfg["cluster"]["pools"][0]["serving"].update(change)
    with pytest.raises(ConfigError) as info:
        simulate(cfg)
    assert info.value.where == where


def test_replicas_added_and_drained_at_run_time_serve_every_model_request():
    wl = {"name": "synthetic", "num_requests": 880, "rate_rps": 3.0, "input_tokens": 64, "output_tokens": 8,
          "output_tokens_max": 64,
          "arrival": {"name": "phases", "durations_s": [20, 20, 60], "rates_rps": [2.0, 40.0, 1.0]},
          "transforms": [{"name": "assign_models", "models": SMALL, "zipf_a": 0.5}]}
    cfg = make_config(1, {"keep_alive_s": 5.0}, workload=wl, num_blocks=120)
    cfg["cluster"]["controllers"] = [{"name": "reactive_autoscaler", "min_replicas": 1, "max_replicas": 3,
                                      "scale_down_idle_s": 5.0, "scale_down_cooldown_s": 1.0}]
    res = simulate(cfg)
    df = res.requests
    assert (df["state"] == "finished").all() and len(df) == 880
    assert res.summary["num_replicas_peak"] > 1 and (res.actions["kind"] == "drain_replica").any()
    assert df["replica"].nunique() > 1


def test_a_serving_front_end_sits_before_the_model_queues(tmp_path):
    # a burst of 6 requests at once through a one-server front end of 50 ms per request: each reaches
    # the model queues 50 ms after the one before, so the k-th first token comes after (k + 1) x 50 ms
    wl = trace(tmp_path, [(0.0, m) for m in ["Qwen2.5-0.5B", "Llama-3.2-1B"] * 3])
    res = simulate(make_config(workload=wl))
    cost = {"name": "analytic", "stack": "trtllm", "frontend_request_s": 0.05}
    fe = simulate(make_config(workload=wl, cost_model=cost))
    assert fe.summary["frontend_requests"] == 6 and fe.summary["num_completed"] == 6
    ttft = fe.requests.sort_values("ttft_s")["ttft_s"].to_numpy()
    for k, t in enumerate(ttft):
        assert t >= (k + 1) * 0.05
    assert "frontend_requests" not in res.summary
