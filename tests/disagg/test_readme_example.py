"""The README's disaggregated-serving example runs (analytic H100 defaults, a real trace)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from sim import simulate

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_pd_cluster_example_runs():
    text = README.read_text()
    block = re.search(r"```yaml\ncluster:\n  router: least_outstanding\n  handoff:.*?```", text, re.S).group(0)
    cluster = yaml.safe_load(block.removeprefix("```yaml\n").removesuffix("```"))["cluster"]
    result = simulate({"workload": {"name": "trace", "path": "traces/data/azure_llm_2023_conv.csv",
                                    "max_requests": 1000},
                       "cluster": cluster, "engine": {"progress": False}})
    df = result.requests
    assert (df["state"] == "finished").all()
    assert (df["pool"] == "decode").sum() > 900  # one-token answers finish on the prefill pool
    assert (df.loc[df["pool"] == "decode", "transfer_s"] > 0).all()
