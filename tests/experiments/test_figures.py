"""Figures are checked by structure, not pixels: axes labels, legend entries, the lines drawn,
SLO and target lines, confidence bands over seeds, log axes and captions."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from sim.tools import plot_style  # noqa: E402
from sim.tools.plots import plot_cdf, plot_latency_goodput, plot_pareto  # noqa: E402


def _legend(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def test_latency_goodput_has_every_line_slo_band_and_caption(reference_24):
    _, table = reference_24
    fig = plot_latency_goodput(table, slo={"ttft_s": 2.0, "tpot_s": 0.05}, attainment=0.9, caption="Llama on H100")
    ttft, tpot, good, att = fig.axes[:4]
    assert ttft.get_ylabel() == "TTFT (s)" and tpot.get_ylabel() == "TPOT (s)"
    assert good.get_xlabel() == "request rate (req/s)" and "goodput" in good.get_ylabel()
    assert set(_legend(ttft)) == {"sarathi p50", "sarathi p99", "vllm_v1 p50", "vllm_v1 p99"}
    lines = {line.get_label(): line for line in ttft.get_lines()}
    assert lines["vllm_v1 p50"].get_linestyle() == "--" and lines["vllm_v1 p99"].get_linestyle() == "-"
    assert lines["vllm_v1 p50"].get_color() == lines["vllm_v1 p99"].get_color() == plot_style.color("vllm_v1")
    assert lines["sarathi p99"].get_color() != lines["vllm_v1 p99"].get_color()
    slo_lines = [ln for ln in ttft.get_lines() if list(ln.get_ydata()) == [2.0, 2.0]]
    assert slo_lines, "the TTFT SLO line"
    assert [ln for ln in att.get_lines() if list(ln.get_ydata()) == [0.9, 0.9]], "the attainment target"
    assert any(isinstance(c, PolyCollection) for c in ttft.collections), "95% band over the 3 seeds"
    assert any(t.get_text() == "Llama on H100" for t in fig.texts)


def test_latency_spanning_decades_is_drawn_in_log_scale():
    rows = [{"point": i, "policy": "a", "rate": r, "seed": 0, "status": "ok", "offered_rps": r,
             "ttft_p50_s": 0.01 * 10 ** i, "ttft_p99_s": 0.02 * 10 ** i, "tpot_p50_s": 0.01, "tpot_p99_s": 0.012,
             "goodput_rps": r, "slo_attainment": 1.0} for i, r in enumerate([1.0, 2.0, 3.0])]
    fig = plot_latency_goodput(pd.DataFrame(rows))
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"


def test_pareto_front_and_legend_without_empty_entries():
    table = pd.DataFrame({"point": range(4), "replicas": [1, 2, 4, 8], "seed": 0, "status": "ok",
                          "num_gpus": [1, 2, 4, 8], "goodput_rps": [1.0, 2.5, 2.0, 6.0]})
    fig = plot_pareto(table)
    ax = fig.axes[0]
    assert "" not in _legend(ax) and "Pareto front" in _legend(ax)
    front = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto front"][0]
    assert list(front.get_xdata()) == [1, 2, 8]


def test_cdf_draws_one_line_per_run_with_the_slo():
    rng = np.random.default_rng(0)
    frames = {name: pd.DataFrame({"state": "finished", "ttft_s": rng.exponential(0.1, 200),
                                  "tpot_s": rng.exponential(0.02, 200), "e2e_s": rng.exponential(2.0, 200)})
              for name in ("vllm_v1", "sarathi")}
    fig = plot_cdf(frames, slo={"ttft_s": 0.5})
    ax = fig.axes[0]
    assert set(_legend(ax)) == {"vllm_v1", "sarathi"}
    assert any(list(ln.get_xdata()) == [0.5, 0.5] for ln in ax.get_lines())
