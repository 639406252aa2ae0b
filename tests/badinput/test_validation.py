"""Issue 19, defects 2, 3 and 6: NaN and inf are refused, impossible setups are refused, nested
specs and ``--set`` values are reported where they are."""

from __future__ import annotations

import json

import pytest

from sim.config import from_dict, load_config
from sim.errors import ConfigError
from sim.tools.cli import main
from sim.tools.sweep import SweepError, load_sweep
from tests.conftest import make_config, make_config_dict
from tests.experiments.conftest import small_base

QUICKSTART = "configs/quickstart.yaml"


# ---------------------------------------------------------------------------- 2: NaN and inf

@pytest.mark.parametrize("override", ["workload.rate_scale=.nan", "slo.ttft_s=.nan", "slo.tpot_s=.inf",
                                      "cluster.pools[0].kv.gpu_memory_utilization=.nan",
                                      "workload.rate_scale=-.inf"])
def test_nan_and_inf_are_refused_one_line(override, capsys):
    assert main(["run", QUICKSTART, "--set", override, "--quiet", "--out", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a finite number" in err and override.partition("=")[0] in err


def test_a_nan_sweep_value_fails_before_any_point_runs():
    with pytest.raises(SweepError, match=r"workload\.rate_scale.*finite"):
        load_sweep({"base": small_base(), "grid": {"workload.rate_scale": [1.0, float("nan")]}})


@pytest.mark.parametrize("value", [float("nan"), "4096", [1], True, -3, 2.5])
def test_a_bad_number_in_a_model_config_json_is_named(tmp_path, value):
    cfg = {"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "intermediate_size": 14336,
           "vocab_size": 128256, "num_key_value_heads": value}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    data = make_config_dict(cost={"name": "analytic"})
    data["cluster"]["pools"][0]["hardware"] = {"model": str(path)}
    data["cluster"]["pools"][0]["kv"] = {"name": "paged"}
    with pytest.raises(ConfigError, match=r"config\.json.*'num_key_value_heads' must be a non-negative integer"):
        from sim import simulate

        simulate(from_dict(data))


def test_zero_attention_heads_is_named(tmp_path):
    from hardware.models import load_hf_config

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 0}))
    with pytest.raises(ConfigError, match="num_attention_heads' must be >= 1"):
        load_hf_config(path)


# ---------------------------------------------------------------------------- 3: impossible hardware

def test_tp_beyond_one_node_is_refused():
    with pytest.raises(ConfigError, match=r"hardware\.tp: tp x pp = 32 x 1 = 32 GPUs, but a H100-SXM node has 8"):
        load_config(QUICKSTART, ["cluster.pools[0].hardware.tp=32"])
    with pytest.raises(ConfigError, match="tp x pp = 4 x 4 = 16"):
        load_config(QUICKSTART, ["cluster.pools[0].hardware.tp=4", "cluster.pools[0].hardware.pp=4"])
    load_config(QUICKSTART, ["cluster.pools[0].hardware.tp=4", "cluster.pools[0].hardware.pp=2"])
    load_config(QUICKSTART, ["cluster.pools[0].hardware.device=GB200", "cluster.pools[0].hardware.tp=16"])


def _pd(prefill_model="Llama-3-8B", decode_model="Llama-3-8B", decode_role="decode"):
    data = make_config_dict()
    pool = data["cluster"]["pools"][0]
    pool.update(name="prefill", role="prefill", hardware={"model": prefill_model})
    decode = {**pool, "name": "decode", "role": decode_role, "hardware": {"model": decode_model}}
    data["cluster"]["pools"].append(decode)
    data["cluster"]["handoff"] = {"name": "distserve"}
    return data


def test_prefill_and_decode_pools_must_serve_one_model():
    with pytest.raises(ConfigError, match=r"cluster\.pools\[1\]\.hardware\.model: pool 'decode' serves "
                                          r"'Llama-3-70B' but pool 'prefill' serves 'Llama-3-8B'"):
        from_dict(_pd(decode_model="Llama-3-70B"))
    from_dict(_pd(decode_model="llama-3-8b"))  # an alias of the same model


def test_a_handoff_needs_a_decode_pool():
    data = make_config_dict(cluster__handoff={"name": "distserve"})
    with pytest.raises(ConfigError, match=r"cluster\.handoff: a hand-off moves prefilled requests to a decode pool"):
        from_dict(data)
    with pytest.raises(ConfigError, match="decode pool"):
        from_dict(_pd(decode_role="mixed"))


# ---------------------------------------------------------------------------- 6: where errors are

def test_a_nested_spec_reports_its_inner_field():
    with pytest.raises(ConfigError) as info:
        make_config(workload={"name": "synthetic", "num_requests": 5, "arrival": {"name": "poisson", "rate_rps": -1}})
    assert str(info.value) == "workload.arrival.rate_rps: must be > 0, got -1.0"
    with pytest.raises(ConfigError, match=r"workload\.lengths\.input\.mediun_tokens: unknown key"):
        make_config(workload={"name": "synthetic", "num_requests": 5,
                              "lengths": {"input": {"name": "lognormal", "mediun_tokens": 5},
                                          "output": {"name": "uniform", "min_tokens": 1, "max_tokens": 2}}})


def test_set_errors_are_blamed_on_the_set_not_a_line_of_the_file():
    with pytest.raises(ConfigError) as info:
        load_config(QUICKSTART, ["cluster.pools[0].num_replicas=-1"])
    assert str(info.value) == ("--set cluster.pools[0].num_replicas=-1: cluster.pools[0].num_replicas: "
                               "must be >= 1, got -1")
    with pytest.raises(ConfigError) as info:
        load_config(QUICKSTART, ["slo.ttft_s=1", "cluster.pools[0].kv.block_size=0"])
    assert str(info.value).startswith("--set cluster.pools[0].kv.block_size=0: ")
