"""KV-cache capacity checked against vLLM's own startup logs (issue 17).

``hardware/corpus/kv_capacity_logs.csv`` holds public vLLM startup lines (``# GPU blocks: N``
x block size, or V1's ``GPU KV cache size: N tokens``) with the GPU, model, TP and
``gpu_memory_utilization`` they ran with (``kv_capacity_logs.md`` lists the sources and the
CUDA-visible memory of each GPU). ``python -m hardware.kv_logs`` prints, per log, the KV tokens
the cost model gives a replica (``kv_capacity_bytes(util) / kv_bytes_per_token``, the number
``policies/kv/paged.py`` turns into blocks) beside the logged ones, and the per-GPU reserve each
log implies::

    reserve = memory x util - weights - logged tokens x KV bytes per token / GPUs

minus the model's per-token activation part: that is the ``ACTIVATION_RESERVE_BYTES`` the log
asks for; the median over the ``use == fit`` rows is printed (``--solve``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path
from typing import Any

from hardware import calibration_constants as cc
from hardware.devices import GIB

LOGS = Path(__file__).with_name("corpus") / "kv_capacity_logs.csv"


def load_logs(path: Path = LOGS) -> list[dict[str, str]]:
    """The rows of the KV-capacity log file, as strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cost_model(row: dict[str, str]) -> Any:
    from hardware.analytic import AnalyticCostModel, AnalyticParams
    from sim.config import HardwareConfig

    hw = HardwareConfig(device=row["device"], model=row["model"], tp=int(row["tp"]))
    return AnalyticCostModel(AnalyticParams(), hw)


def predicted_tokens(row: dict[str, str], cm: Any = None) -> float:
    """KV tokens the cost model (``cm``: the row's own, built if not given) gives the replica of ``row``
    at its ``gpu_memory_utilization``."""
    cm = cm or _cost_model(row)
    return cm.kv_capacity_bytes(float(row["gpu_memory_utilization"])) / cm.kv_bytes_per_token


def implied_reserve_bytes(row: dict[str, str], cm: Any = None) -> float:
    """``ACTIVATION_RESERVE_BYTES`` that would make the model give exactly the logged tokens."""
    cm = cm or _cost_model(row)
    util = float(row["gpu_memory_utilization"])
    kv_per_gpu = int(row["logged_kv_tokens"]) * cm.kv_bytes_per_token / cm.num_gpus
    reserve = cm.device.memory_bytes * util - cm.weight_bytes_per_gpu - kv_per_gpu
    return reserve - (cm.activation_reserve_bytes() - cc.ACTIVATION_RESERVE_BYTES)


def report(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per log: logged and predicted tokens, signed error and the implied reserve constant."""
    out = []
    for row in rows:
        cm = _cost_model(row)
        pred = predicted_tokens(row, cm)
        logged = int(row["logged_kv_tokens"])
        out.append({"id": row["id"], "device": row["device"], "model": row["model"], "tp": int(row["tp"]),
                    "use": row["use"], "logged": logged, "predicted": pred, "error": pred / logged - 1,
                    "implied_reserve_gib": implied_reserve_bytes(row, cm) / GIB})
    return out


def solved_reserve_bytes(rows: list[dict[str, str]]) -> float:
    """Median implied ``ACTIVATION_RESERVE_BYTES`` over the ``use == fit`` logs."""
    return statistics.median(implied_reserve_bytes(r) for r in rows if r["use"] == "fit")


def main(argv: list[str] | None = None) -> int:
    """Print the per-log comparison (and, with ``--solve``, the median implied reserve)."""
    parser = argparse.ArgumentParser(prog="python -m hardware.kv_logs", description=__doc__.splitlines()[0])
    parser.add_argument("--solve", action="store_true", help="print the median implied ACTIVATION_RESERVE_BYTES")
    args = parser.parse_args(argv)
    rows = load_logs()
    print(f"{'id':22} {'device':10} {'model':12} tp {'use':4} {'logged':>9} {'model':>10} {'error':>7} reserve_gib")
    errs = []
    for r in report(rows):
        print(f"{r['id']:22} {r['device']:10} {r['model']:12} {r['tp']:2} {r['use']:4} {r['logged']:9d} "
              f"{r['predicted']:10.0f} {r['error']:+7.1%} {r['implied_reserve_gib']:.2f}")
        if r["use"] == "fit":
            errs.append(abs(r["error"]))
    print(f"fit logs: n={len(errs)}, median |error| {statistics.median(errs):.1%}, max {max(errs):.1%}")
    if args.solve:
        print(f"median implied ACTIVATION_RESERVE_BYTES: {solved_reserve_bytes(rows) / GIB:.3f} GiB "
              f"(now {cc.ACTIVATION_RESERVE_BYTES / GIB:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
