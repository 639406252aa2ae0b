"""SOURCES.md fid15a: vLLM V1 rows run with ``retain_preempted_blocks`` unless their notes say prefix caching
was off; prefix-hash matching stays off (but for the replayed prompt sets of fid15g); the am-1 offline row
stops thrashing with it."""

from hardware import corpus_predict as cp
from hardware.corpus_engines import is_v1_engine, retains_preempted_blocks, shared_prompts_for


def test_every_v1_row_and_no_other_retains():
    rows = cp.load_corpus()
    v1 = [r for r in rows if r["engine"] == "vllm" and is_v1_engine(r["engine_version"])]
    # the 95 rows of 8 sources fid15a lists, the 19 of ree2raz_modal_l4_a100 (fid15d) and the 24 vLLM rows of
    # varad_ieb_a10g (fid15f) added after it
    assert len(v1) == 138 and len({r["source"] for r in v1}) == 10
    assert all(retains_preempted_blocks(r) for r in v1)
    assert not any(retains_preempted_blocks(r) for r in rows if r not in v1)
    for r in v1:
        kv = cp.serving_config(r, "unused.csv", {})["cluster"]["pools"][0]["kv"]
        # prefix-hash matching only where the notes state a replayed prompt set (fid15g)
        assert kv["retain_preempted_blocks"] is True
        assert bool(kv.get("enable_prefix_caching")) is (shared_prompts_for(r) is not None)
    other = next(r for r in rows if r["engine"] == "vllm" and not is_v1_engine(r["engine_version"]))
    assert "retain_preempted_blocks" not in cp.serving_config(other, "unused.csv", {})["cluster"]["pools"][0]["kv"]


def test_notes_saying_prefix_caching_was_off_turn_it_off():
    row = next(r for r in cp.load_corpus() if r["id"] == "am-1")
    for notes in ("vllm serve --no-enable-prefix-caching", "prefix caching off"):
        assert not retains_preempted_blocks({**row, "notes": notes})
    assert cp._serving_key(row, {}) != cp._serving_key({**row, "notes": row["notes"] + "; prefix caching off"}, {})


def test_the_offline_row_is_predicted_with_retention():
    row = next(r for r in cp.load_corpus() if r["id"] == "am-1")
    with_retention = cp.predict(row)
    without = cp.predict({**row, "notes": row["notes"] + "; prefix caching off"})
    # README (x): 63.89 tok/s with the flag, 30.93 without (the thrash of README (u))
    assert with_retention > 1.5 * without
