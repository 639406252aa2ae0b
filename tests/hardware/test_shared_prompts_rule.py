"""SOURCES.md fid15g: closed-loop rows whose notes state a replayed prompt set ("distinct prompts N", "shared
prefix T tokens", "prefix warm-up W requests") send requests whose prefix-hash chains repeat, on a KV with
prefix caching; every other row is simulated as before."""

import numpy as np

from hardware import corpus_predict as cp
from hardware.corpus_engines import caches_prefixes, is_v1_engine, shared_prompts_for
from traces.closed_loop import ClosedLoopParams, ClosedLoopWorkload

SOURCES = {"varad_ieb_a10g": 48, "ree2raz_modal_l4_a100": 19, "inferencebench_marathon_h100": 8,
           "inferencebench_llama8b_h100": 8, "inferencebench_qwen72b_h100": 9}


def _row(row_id):
    return next(r for r in cp.load_corpus() if r["id"] == row_id)


def test_the_pattern_parses():
    notes = "x; distinct prompts 49 shared prefix 28 tokens, prefix warm-up 128 requests"
    row = {"kind": "closed_loop", "notes": notes}
    assert shared_prompts_for(row) == {"distinct_prompts": 49, "system_prompt_tokens": 28,
                                       "warmup_requests": 128, "prefix_block_tokens": 16}
    assert shared_prompts_for({"kind": "closed_loop", "notes": "distinct prompts 4"})["system_prompt_tokens"] == 0
    assert shared_prompts_for({"kind": "closed_loop", "notes": "100 prompts"}) is None
    assert shared_prompts_for({"kind": "offline_fixed", "notes": "distinct prompts 4"}) is None


def test_the_rows_fid15g_lists_and_no_other_cache_prefixes():
    rows = cp.load_corpus()
    marked = [r for r in rows if shared_prompts_for(r)]
    assert {s: sum(r["source"] == s for r in marked) for s in SOURCES} == SOURCES
    assert len(marked) == sum(SOURCES.values())
    for r in marked:
        assert caches_prefixes(r)
        kv = cp.serving_config(r, "unused.csv", {})["cluster"]["pools"][0]["kv"]
        assert kv["enable_prefix_caching"] is True
        assert kv.get("retain_preempted_blocks", False) is (r["engine"] == "vllm" and is_v1_engine(r["engine_version"]))
    assert not any(caches_prefixes(r) for r in rows if r not in marked)
    assert not any(cp.serving_config(r, "u.csv", {})["cluster"]["pools"][0]["kv"].get("enable_prefix_caching")
                   for r in rows if r not in marked and r["kind"] in cp.SERVING_KINDS)
    # the warm-up counts the rule sets: ree2raz 2c, varad one wave of c above the first level
    for r in marked:
        warmup = shared_prompts_for(r)["warmup_requests"]
        expected = {"ree2raz_modal_l4_a100": 2 * r["batch"],
                    "varad_ieb_a10g": r["batch"] if r["batch"] > 1 else 0}.get(r["source"], 0)
        assert warmup == expected, r["id"]


def test_prefix_caching_off_in_the_notes_turns_it_off_and_changes_the_key():
    row = _row("vieb-15")
    off = {**row, "notes": row["notes"] + "; prefix caching off"}
    assert caches_prefixes(row) and not caches_prefixes(off)
    assert not caches_prefixes({**row, "engine": "vllm", "engine_version": "0.6.3"})  # no default prefix cache
    assert cp._serving_key(row, {}) != cp._serving_key(off, {})
    plain = {**row, "notes": row["notes"].split("; prompt set")[0]}
    assert cp._serving_key(row, {}) != cp._serving_key(plain, {})


def _requests(params):
    """Every request of the workload, finishing them in the order they were sent (at t = 1, 2, ...)."""
    wl = ClosedLoopWorkload(params)
    rng = np.random.default_rng(0)
    reqs = list(wl.initial_requests(rng))
    done = 0
    while done < len(reqs):
        nxt = wl.on_done(reqs[done], 1.0 + done, rng)
        done += 1
        reqs.extend(nxt if isinstance(nxt, list) else [nxt] if nxt is not None else [])
    return reqs


def test_a_warm_up_pass_ends_before_the_measured_requests_start_all_at_once():
    params = ClosedLoopParams(num_users=3, num_requests=9, input_tokens=44, output_tokens=8,
                              distinct_prompts=5, warmup_requests=2)
    wl = ClosedLoopWorkload(params)
    rng = np.random.default_rng(0)
    first = list(wl.initial_requests(rng))
    assert [r.id for r in first] == [0, 1]  # the third user waits for the pass to end
    assert wl.on_done(first[0], 1.0, rng) is None  # the pass is all sent: its user waits too
    released = wl.on_done(first[1], 2.0, rng)
    assert [r.id for r in released] == [2, 3, 4] and all(r.arrival_s == 2.0 for r in released)
    assert released[0].prefix_hashes == first[0].prefix_hashes  # the round robin starts again at prompt 0
    assert len(_requests(params)) == 9


def test_requests_of_the_same_prompt_share_chains_and_the_template_is_shared():
    params = ClosedLoopParams(num_users=2, num_requests=13, input_tokens=44, output_tokens=8,
                              distinct_prompts=3, system_prompt_tokens=28, warmup_requests=4)
    reqs = _requests(params)
    chains = [r.prefix_hashes for r in reqs]
    assert all(len(c) == 3 for c in chains)  # ceil(44 / 16) units, the last partial
    # warm-up 0..3 -> prompts 0 1 2 0, then the measured requests start again at prompt 0
    prompts = [0, 1, 2, 0] + [k % 3 for k in range(9)]
    for a in range(13):
        for b in range(13):
            assert (chains[a] == chains[b]) is (prompts[a] == prompts[b])
            assert chains[a][0] == chains[b][0]  # floor(28 / 16) = 1 shared template unit
            if prompts[a] != prompts[b]:
                assert not set(chains[a][1:]) & set(chains[b][1:])
    unique = _requests(ClosedLoopParams(num_users=2, num_requests=6, input_tokens=44, output_tokens=8))
    assert all(r.prefix_hashes is None for r in unique)


def test_a_repeated_prompt_closed_loop_hits_and_lowers_ttft():
    row = _row("vieb-15")  # 64 clients, 22-token prompts, SGLang stack
    shared = cp.simulate_closed_loop(row)
    plain = cp.simulate_closed_loop({**row, "notes": row["notes"].split("; prompt set")[0]})
    assert len(shared) == len(plain) == 100  # the warm-up wave is left out of the frame
    assert (shared["num_cached_tokens"] == 16).all()  # one full 16-token unit of 22 tokens, warm from the warm-up
    assert (plain["num_cached_tokens"] == 0).all()
    assert shared["ttft_s"].median() < plain["ttft_s"].median()


def test_a_cold_level_misses_each_prompt_once():
    row = _row("vieb-1")  # one client, no warm-up: the 4 prompts' first requests miss
    frame = cp.simulate_closed_loop(row)
    assert (frame["num_cached_tokens"] == 0).sum() == 4 and (frame["num_cached_tokens"] == 16).sum() == 96
