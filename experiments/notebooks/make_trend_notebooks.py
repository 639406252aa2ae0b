"""Write one notebook per paper of the README's "Paper trends reproduced" table.

Each notebook states the paper's claim, the full command behind the README's numbers, and
runs the experiment's ``--quick`` mode (a small case, not the README's numbers) with its
figures sent to a temporary folder (``SERVESIM_FIGURES_DIR``, see ``sim/tools/figures.py``),
then shows the printed table and the figures. Regenerate after editing ``PAPERS``::

    python experiments/notebooks/make_trend_notebooks.py          # write trend_*.ipynb
    python experiments/notebooks/make_trend_notebooks.py --check  # exit 1 if any is stale

The tests check every notebook is current and execute them (``pytest -m slow``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

# (notebook stem, title, claims from the README table, [(script, full command, figures of --quick)])
PAPERS: list[tuple[str, str, list[str], list[tuple[str, str, list[str]]]]] = [
    ("sarathi", "Sarathi-Serve: stall-free batching",
     ["Sarathi-Serve reaches 2.6x vLLM's capacity (highest QPS with P99 TBT <= SLO and median "
      "scheduling delay <= 2 s), Mistral-7B on one A100-80GB, ShareGPT4 lengths."],
     [("sarathi_capacity", "python experiments/sarathi_capacity.py", ["sarathi_capacity.png"])]),
    ("distserve", "DistServe: prefill/decode disaggregation",
     ["DistServe serves up to 7.4x more requests per GPU than vLLM (goodput: highest rate with >= 90% "
      "meeting TTFT and TPOT), chatbot setting, OPT-13B / 66B / 175B on A100-80GB."],
     [("distserve_paper_setting", "python experiments/distserve_paper_setting.py", [])]),
    ("splitwise", "Splitwise: phase splitting on prompt and token machines",
     ["Splitwise: 1.4x throughput at 20% lower cost, or 2.35x at the same cost and power "
      "(Llama-2-70B / BLOOM-176B, Azure 2023 code and conv traces)."],
     [("splitwise_modes_azure", "python experiments/splitwise_modes_azure.py --rate-scale 4", []),
      ("splitwise_headline", "python experiments/splitwise_headline.py --requests 1500",
       ["splitwise_headline_own.png"])]),
    ("pecsched", "PecSched: short-first scheduling with long prompts",
     ["PecSched: short-request p99 queueing -58 to -87%, long-request JCT only +4 to +7%; "
      "strict priority starves 92-100% of long requests."],
     [("pecsched_azure", "python experiments/pecsched_azure.py --drain 20", [])]),
    ("speculation", "Adaptive speculative decoding: SmartSpec, SpecServe, FASER",
     ["SmartSpec: up to 3.2x lower mean latency than no speculation at low load.",
      "SmartSpec/SpecServe: under load a static k is slower than none, the adaptive ones stay within 5% of none.",
      "SpecServe: k falls toward 0 with load; within 5% of the best static k at each rate.",
      "FASER: up to 53% higher throughput and 1.92x lower latency than batch-wide speculation."],
     [("speculation_azure", "python experiments/speculation_azure.py",
       ["speculation_latency.png", "speculation_k.png"])]),
    ("llumnix", "Llumnix: live migration across instances",
     ["Llumnix: live-migration downtime stays near constant as the sequence grows; stop and copy grows with it.",
      "Llumnix: p99 TTFT up to 15x lower than round robin; fewer preemptions.",
      "Llumnix: high-priority requests up to 1.5x faster with priority headroom.",
      "Llumnix: autoscaling with migration reaches similar tail latency at up to 36% lower cost."],
     [("migration_downtime", "python experiments/migration_downtime.py", ["migration_downtime.png"]),
      ("llumnix_azure", "python experiments/llumnix_azure.py --part all", ["llumnix_azure.png"])]),
    ("goodserve", "GoodServe: goodput-aware routing on heterogeneous GPUs",
     ["GoodServe: goodput up to +27.4% over existing routing on heterogeneous GPUs; "
      "rectification on beats off, and the gain shrinks as predictor error grows."],
     [("goodserve_hetero", "python experiments/goodserve_hetero.py", ["goodserve_hetero_quick.png"])]),
    ("vtc", "VTC: fair scheduling by virtual token counters",
     ["VTC: max / avg service difference FCFS 760 / 434 -> VTC 368 / 252 (27 LMSYS clients); "
      "a heavy hitter cannot raise others' latency unboundedly."],
     [("vtc_azure", "python experiments/vtc_azure.py", ["vtc_service.png", "vtc_heavy_hitter.png"])]),
    ("fairserve", "FairServe: application-aware fairness",
     ["FairServe: no interaction throttled mid-way; fairer across apps than VTC (abstract, no numbers)."],
     [("fairserve_azure", "python experiments/fairserve_azure.py", ["fairserve_apps.png"])]),
    ("janus", "JANUS: disaggregated attention and MoE experts",
     ["JANUS: with skewed routing a_max rises with batch and saturates near min(C, E / n_moe); "
      "its activation scheduler lowers a_max vs random replica choice.",
      "JANUS: per-GPU throughput up to 4.7x vs SGLang at the same TPOT SLO.",
      "JANUS scaler: 39% fewer GPU-hours over 24 h than static provisioning for the peak."],
     [("moe_ep_skew", "python experiments/moe_ep_skew.py", ["moe_ep_skew.png"]),
      ("moe_janus", "python experiments/moe_janus.py", ["moe_janus.png"])]),
    ("layered_prefill", "Layered prefill for MoE models",
     ["Layered prefill: chunked prefill adds up to 39% expert weight traffic; TTFT up to -70%, "
      "energy/token up to -22%, TBT stall-free."],
     [("moe_layered_prefill", "python experiments/moe_layered_prefill.py", ["moe_layered_prefill.png"])]),
    ("c2cserve", "C2CServe: multi-model serving on GH200 MIG slices, weights streamed over NVLink-C2C",
     ["C2CServe: cold start up to 7.1x lower (dense), up to 4.6x lower for MoE, than serverless baselines "
      "on GH200 MIG slices.",
      "C2CServe: >95% TTFT and TPOT attainment under C2C contention."],
     [("c2cserve_mig", "python experiments/c2cserve_mig.py", ["c2cserve_mig.png"])]),
    ("cacheopt", "CacheOPT: KV allocation by predicted output length",
     ["CacheOPT: up to 3.29x lower p99 TBT, up to 2.83x lower p99 TTFT and up to 1.58x higher rate meeting "
      "the SLOs; the gain shrinks as the predictor's error grows."],
     [("cacheopt_azure", "python experiments/cacheopt_azure.py", ["cacheopt_azure.png"])]),
    ("memshare", "MemShare: sharing redundant reasoning KV blocks",
     ["MemShare: up to +84.79% throughput when memory-bound; no gain when not memory-bound."],
     [("memshare_reasoning", "python experiments/memshare_reasoning.py", ["memshare_reasoning.png"])]),
]

SETUP = '''import os
import subprocess
import sys
import tempfile
from pathlib import Path

from IPython.display import Image, display

ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "pyproject.toml").exists())


def run_quick(script: str, figures: list[str]) -> None:
    """Run experiments/<script>.py --quick, figures to a temporary folder; show its table and figures."""
    folder = Path(tempfile.mkdtemp(prefix=f"servesim-{script}-"))
    env = {**os.environ, "SERVESIM_FIGURES_DIR": str(folder), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{script}.py"), "--quick"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    print(done.stdout)
    if done.returncode:
        raise RuntimeError(f"{script} --quick exited {done.returncode}:\\n{done.stderr[-3000:]}")
    missing = [name for name in figures if not (folder / name).exists()]
    if missing:
        raise RuntimeError(f"{script} --quick drew no {missing} in {folder}")
    for name in figures:
        display(Image(filename=str(folder / name)))'''


def notebook(stem: str, title: str, claims: list[str], runs: list[tuple[str, str, list[str]]]) -> nbformat.NotebookNode:
    """The notebook of one paper; cell ids are fixed so regenerating gives the same file."""
    v4 = nbformat.v4
    lines = [f"# {title}", "", "The paper's claims (rows of the README's \"Paper trends reproduced\" table, "
             "where our numbers and verdicts are):", ""]
    lines += [f"- {claim}" for claim in claims]
    lines += ["", "The README's numbers come from the full runs:", ""]
    lines += [f"    {command}" for _, command, _ in runs]
    lines += ["", "This notebook runs each experiment's `--quick` mode (a small case: fewer seeds, requests "
              "or rates, so its numbers differ from the README's), with the figures written to a temporary "
              "folder instead of `docs/`. Generated by `experiments/notebooks/make_trend_notebooks.py`; "
              "edit that, not this file."]
    cells = [v4.new_markdown_cell("\n".join(lines), id=f"{stem}-about"),
             v4.new_code_cell(SETUP, id=f"{stem}-setup")]
    for script, _, figures in runs:
        cells.append(v4.new_code_cell(f"run_quick({script!r}, {figures!r})", id=f"{stem}-{script}"))
    nb = v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    return nb


def rendered() -> dict[Path, str]:
    """{notebook path: its text} for every paper in ``PAPERS``."""
    return {HERE / f"trend_{stem}.ipynb": nbformat.writes(notebook(stem, title, claims, runs)) + "\n"
            for stem, title, claims, runs in PAPERS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a notebook differs from the generator's")
    args = ap.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print(f"stale notebooks (rerun {Path(__file__).name}): {', '.join(stale)}")
        return 1
    print(f"{'wrote' if stale and not args.check else 'up to date'}: {', '.join(stale) or len(PAPERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
