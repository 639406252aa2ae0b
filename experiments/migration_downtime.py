"""Migration downtime against sequence length: Llumnix's live pre-copy vs stop and copy.

Llumnix (Sun et al., OSDI'24, Fig. 10) reports a near-constant downtime for its multi-stage
live migration whatever the sequence length, where a blocking copy (and recompute) grows with
it. Here: one request of ``L`` prompt tokens decoding on an H100 (Llama-3-8B, analytic cost
model) is moved to a second H100 at t = 5 s, over the transfer service's default link
(``ethernet-100g``, 12.5 GB/s), live or by stop and copy; the downtime is the time the request
is stopped (``transfer.records``: stop to attach). Run::

    .venv/bin/python experiments/migration_downtime.py [--quick]

Prints a table and writes docs/migration_downtime.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim.config import from_dict
from sim.engine.cluster import Cluster
from sim.engine.recorder import Recorder
from sim.tools.figures import figure_dir

DOCS = Path(__file__).resolve().parent.parent / "docs"
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
QUICK_LENGTHS = (1024, 4096, 16384)


def config(input_tokens: int, link: str = "ethernet-100g") -> dict:
    """Two H100 replicas of Llama-3-8B and one request of ``input_tokens`` prompt tokens."""
    pool = {"name": "main", "num_replicas": 2, "hardware": {"device": "H100-SXM", "model": "Llama-3-8B"},
            "cost_model": "analytic", "scheduler": {"name": "vllm_v1", "max_num_batched_tokens": 8192},
            "kv": {"name": "paged", "block_size": 16}}
    return {"seed": 0,
            "workload": {"name": "synthetic", "num_requests": 1, "arrival": {"name": "all_at_once"},
                         "input_tokens": input_tokens, "output_tokens": 1500},
            "cluster": {"router": "round_robin", "transfer": {"link": link}, "pools": [pool]},
            "engine": {"progress": False}}


def downtime(input_tokens: int, live: bool, at_s: float = 5.0, link: str = "ethernet-100g") -> dict:
    """Migrate the request at ``at_s``; the transfer record of its migration (downtime_s, stages...)."""
    cfg = from_dict(config(input_tokens, link))
    cluster = Cluster(cfg, cfg.workload.build(), Recorder(), np.random.SeedSequence(0))
    event = cluster.env.timeout(at_s)
    event.callbacks.append(lambda _e: cluster.migrate(0, 1, live=live))
    cluster.run()
    rec, = cluster.transfer.records
    return rec


def table(lengths=LENGTHS) -> list[dict]:
    rows = []
    for n in lengths:
        live, stop = downtime(n, True), downtime(n, False)
        assert live["outcome"] == stop["outcome"] == "migrated", (live, stop)
        rows.append({"input_tokens": n, "live_downtime_ms": 1e3 * live["downtime_s"],
                     "live_stages": live["num_stages"], "stop_copy_downtime_ms": 1e3 * stop["downtime_s"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="three lengths")
    args = ap.parse_args()
    rows = table(QUICK_LENGTHS if args.quick else LENGTHS)
    print(f"{'prompt tokens':>14} {'live downtime ms':>17} {'stages':>7} {'stop-and-copy ms':>17}")
    for r in rows:
        print(f"{r['input_tokens']:>14,} {r['live_downtime_ms']:>17.3f} {r['live_stages']:>7} "
              f"{r['stop_copy_downtime_ms']:>17.2f}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["input_tokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(xs, [r["stop_copy_downtime_ms"] for r in rows], "o-", label="stop and copy")
    ax.plot(xs, [r["live_downtime_ms"] for r in rows], "s-", label="live pre-copy (Llumnix)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (prompt tokens)")
    ax.set_ylabel("downtime (ms)")
    ax.set_title("KV migration downtime, Llama-3-8B, 100 GbE")
    ax.legend()
    fig.tight_layout()
    out = figure_dir(args.quick) / "migration_downtime.png"
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
