"""Config loading: errors name the dotted path, the file and the line."""

from __future__ import annotations

import textwrap

import pytest

from sim.config import dump_config, from_dict, load_config, load_yaml
from sim.errors import ConfigError
from tests.conftest import make_config_dict


def _write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_misspelt_key_names_path_file_line_and_suggestion(tmp_path):
    path = _write(tmp_path, """\
        workload: {name: synthetic, num_requests: 10}
        cluster:
          pools:
            - name: main
              cost_model: constant
              scheduler:
                name: sarathi
                chunk_sise: 256
        """)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "cluster.pools[0].scheduler.chunk_sise" in msg
    assert f"{path}:8" in msg
    assert "did you mean 'chunk_size'" in msg


def test_unknown_policy_lists_choices_and_suggests():
    data = make_config_dict(scheduler="sarathy")
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    msg = str(err.value)
    assert "cluster.pools[0].scheduler.name" in msg
    assert "did you mean 'sarathi'" in msg
    assert "vllm_v1" in msg


@pytest.mark.parametrize("key,value,needle", [
    ("workload.rate_rps", -1.0, "must be > 0"),
    ("workload.num_requests", "many", "expected an integer"),
    ("cluster.pools[0].kv.block_size", 0, "must be >= 1"),
    ("cluster.pools[0].role", "prefil", "did you mean 'prefill'"),
    ("slo.ttft_s", "fast", "expected"),
])
def test_bad_values_are_named(key, value, needle):
    with pytest.raises(ConfigError) as err:
        from_dict(make_config_dict(), [f"{key}={value}"])
    assert key in str(err.value)
    assert needle in str(err.value)


def test_yaml_syntax_error_names_line(tmp_path):
    path = _write(tmp_path, "workload:\n  name: synthetic\n  bad: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert "line" in str(err.value) and str(path) in str(err.value)


def test_overrides_and_round_trip():
    cfg = from_dict(make_config_dict(), ["cluster.pools[0].scheduler=sarathi",
                                         "cluster.pools[0].scheduler.chunk_size=256",
                                         "cluster.pools[0].num_replicas=3"])
    pool = cfg.cluster.pools[0]
    assert pool.scheduler.name == "sarathi" and pool.scheduler.params.chunk_size == 256
    assert pool.num_replicas == 3
    import yaml
    again = from_dict(yaml.safe_load(dump_config(cfg)))
    assert dump_config(again) == dump_config(cfg)


def test_plugin_by_dotted_name():
    data = make_config_dict(router="policies.routers.basic:RoundRobinRouter")
    cfg = from_dict(data)
    assert cfg.cluster.router.policy_cls.__name__ == "RoundRobinRouter"


def test_errors_survive_copying():
    import pickle

    from sim.errors import TraceError

    for exc in (TraceError("t.csv", 7, "bad row"), ConfigError("bad", "a.b", "c.yaml")):
        again = pickle.loads(pickle.dumps(exc))
        assert str(again) == str(exc) and type(again)(*again.args).args == exc.args


def test_bad_trace_row_mid_run_names_file_and_line(tmp_path):
    from sim import simulate
    from sim.errors import TraceError

    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:46.6805900,10,5\n2023-11-16 18:15:47.0000000,ten,5\n")
    with pytest.raises(TraceError) as err:
        simulate(from_dict(make_config_dict(workload={"name": "trace", "path": str(trace)})))
    assert str(err.value).startswith(f"{trace}:3:")
