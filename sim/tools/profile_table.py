"""Where a bench scenario's simulation time goes, by area of the code, as a markdown table.

``python -m sim.tools.profile_table [SCENARIO ...]`` runs each scenario once under cProfile, with
the profiler on only around the event loop (``Cluster.run``: start-up and the summary are left
out; the trace is read lazily, so reading it counts), and prints one row per scenario: events per
request, each area's share of the profiled own time, and the costliest functions. ``--json``
prints the figures instead. cProfile charges a fixed cost per call, so code with many small calls
looks costlier than it is: read shares, and confirm a change with ``servesim bench`` or
instruction counts.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import re
import sys
from typing import Any

# area -> path fragments (first match wins, in this order); "builtins" are C functions (len, min,
# list and array methods, numpy's C calls) whoever calls them; the rest is "other"
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SimPy kernel", ("/simpy/",)),
    ("speculation", ("policies/speculators/", "sim/engine/speculation.py", "sim/engine/spec_stretch.py")),
    ("fast path", ("sim/engine/fast_path.py", "sim/engine/thru_finish.py", "sim/engine/mixed_plan.py",
                   "sim/engine/mixed_stretch.py", "sim/engine/blocked_stretch.py", "sim/engine/monotone.py")),
    ("replica loop", ("sim/engine/replica.py", "sim/engine/clock.py", "sim/engine/plan.py", "sim/engine/ops.py",
                      "sim/engine/views.py", "sim/engine/queue_ops.py", "sim/engine/actions.py",
                      "sim/engine/states.py", "sim/engine/pausable.py")),
    ("dispatch + routers", ("sim/engine/cluster.py", "sim/engine/load_index.py", "policies/routers/",
                            "sim/engine/frontend.py")),
    ("schedulers", ("policies/schedulers/",)),
    ("KV", ("policies/kv/",)),
    ("cost model", ("hardware/", "sim/cost.py")),
    ("controllers", ("policies/controllers/", "policies/llumnix_freeness.py", "sim/engine/lifecycle.py")),
    ("links + weights", ("sim/engine/transfer.py", "sim/engine/weight_stream.py", "sim/engine/handoff.py",
                         "policies/handoff/", "sim/engine/multimodel.py", "sim/engine/model_placement.py",
                         "sim/engine/held_pool.py")),
    ("recording", ("sim/engine/recorder.py", "sim/engine/itl.py", "sim/engine/metrics.py")),
    ("workload", ("traces/", "sim/workload.py", "sim/engine/request.py")),
)
COLUMNS = (*(name for name, _ in AREAS), "builtins", "other")


def area_of(filename: str) -> str:
    """The area a profiled function's file belongs to (``~`` is cProfile's name for C functions)."""
    if filename == "~" or filename.startswith("<built-in"):
        return "builtins"
    path = filename.replace("\\", "/")
    for name, fragments in AREAS:
        if any(f in path for f in fragments):
            return name
    return "other"


def profile_scenario(name: str, top: int = 6) -> dict[str, Any]:
    """Run bench scenario ``name`` with the profiler on around its event loop; the shares by area
    (percent of own time), the ``top`` costliest functions and the events per request."""
    from sim.api import simulate
    from sim.engine.cluster import Cluster
    from sim.tools.bench import SCENARIOS

    prof = cProfile.Profile()
    run = Cluster.run

    def profiled_run(cluster: Cluster) -> None:
        prof.runcall(run, cluster)

    Cluster.run = profiled_run
    try:
        summary = simulate(SCENARIOS[name]()).summary
    finally:
        Cluster.run = run
    stats = pstats.Stats(prof).stats  # (file, line, function) -> (calls, primitive, own, cumulative, callers)
    total = sum(v[2] for v in stats.values()) or 1.0
    shares = dict.fromkeys(COLUMNS, 0.0)
    for (filename, _line, _func), v in stats.items():
        shares[area_of(filename)] += 100.0 * v[2] / total
    costliest = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    functions = [{"function": _label(key), "share": 100.0 * v[2] / total, "calls": v[0]} for key, v in costliest]
    return {"scenario": name, "events_per_request": summary["num_events"] / max(1, summary["num_requests"]),
            "profiled_s": total, "shares": shares, "top": functions}


def _label(key: tuple[str, int, str]) -> str:
    filename, _line, func = key
    if filename == "~":  # "<method 'tolist' of 'numpy.ndarray' objects>", "<built-in method builtins.len>"
        m = re.fullmatch(r"<method '(\w+)' of '([\w.]+)' objects>", func)
        return f"{m.group(2)}.{m.group(1)}" if m else func.strip("<>").removeprefix("built-in method ")
    module = filename.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py")
    return f"{module}.{func}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The by-area table, then the costliest functions per scenario."""
    head = "| scenario | events / request | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        cells = " | ".join(f"{r['shares'][c]:.0f}%" for c in COLUMNS)
        lines.append(f"| `{r['scenario']}` | {r['events_per_request']:.1f} | {cells} |")
    lines += ["", "| scenario | costliest functions by own time |", "|---|---|"]
    for r in rows:
        tops = ", ".join(f"`{f['function']}` {f['share']:.0f}%" for f in r["top"])
        lines.append(f"| `{r['scenario']}` | {tops} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from sim.tools.bench import LONG, SCENARIOS, compile_bytecode

    parser = argparse.ArgumentParser(prog="python -m sim.tools.profile_table", description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="bench scenarios (default: all but the long ones)")
    parser.add_argument("--top", type=int, default=6, help="costliest functions listed per scenario")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    names = args.scenarios or [n for n in SCENARIOS if n not in LONG]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"error: unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}", file=sys.stderr)
        return 2
    compile_bytecode()
    rows = [profile_scenario(n, args.top) for n in names]
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
