"""The cost model's KV capacity against public vLLM startup logs (hardware/corpus/kv_capacity_logs.csv).

Tolerance: every ``fit`` log within 35% and their median absolute error within 8%. With the
nameplate memory sizes (24 GiB A10G / L4, 48 GiB L40S) the 24 GB TP=1 logs came out +68% and the
L40S one +37%, so both bounds are there to fail.
"""

import statistics

from hardware.kv_logs import load_logs, report


def test_kv_capacity_matches_vllm_logs():
    rows = [r for r in report(load_logs()) if r["use"] == "fit"]
    assert len(rows) >= 9
    assert {r["device"] for r in rows} >= {"A10G", "L4", "L40S", "A100-80GB"}
    worst = max(rows, key=lambda r: abs(r["error"]))
    assert abs(worst["error"]) <= 0.35, worst
    assert statistics.median(abs(r["error"]) for r in rows) <= 0.08


def test_device_memory_is_the_cuda_visible_total():
    from hardware.devices import GIB, get_device

    for name, visible in {"A10G": 22.06, "L4": 22.03, "L40S": 44.31, "A100-80GB": 79.15,
                          "H100-SXM": 79.18, "H200": 139.80}.items():
        assert abs(get_device(name).memory_bytes / GIB - visible) < 0.01, name
