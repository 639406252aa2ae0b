"""The latency-goodput notebook executes; every plot kind draws from result tables."""

from __future__ import annotations

import pytest

from sim.api import simulate
from sim.tools.cli import main
from sim.tools.output import write_run
from sim.tools.plots import aggregate, guess_hue, pareto_front, swept_columns
from tests.conftest import make_config_dict
from tests.experiments.conftest import REPO

NOTEBOOK = REPO / "experiments" / "notebooks" / "latency_goodput.ipynb"


def test_notebook_executes():
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install 'servesim[notebook]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install 'servesim[notebook]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install 'servesim[notebook]')")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure was drawn


def test_table_helpers(reference_24):
    _, table = reference_24
    assert swept_columns(table) == ["rate_scale", "scheduler"]
    assert guess_hue(table) == "scheduler"
    agg = aggregate(table, "scheduler")
    assert len(agg) == 8 and "seed" not in agg.columns  # 3 seeds averaged
    assert list(pareto_front([1.0, 1.0, 2.0, 3.0], [5.0, 4.0, 5.0, 9.0])) == [0, 3]


@pytest.mark.parametrize("kind", ["latency", "goodput", "latency_goodput"])
def test_sweep_plots_from_the_table(kind, reference_24, tmp_path):
    out, _ = reference_24
    target = tmp_path / f"{kind}.png"
    assert main(["plot", str(out / "results.parquet"), "--kind", kind, "--out", str(target)]) == 0
    assert target.stat().st_size > 1000


def test_run_plots_from_requests_and_steps(tmp_path):
    runs = []
    for scheduler in ("vllm_v1", "sarathi"):
        folder = tmp_path / scheduler
        write_run(simulate(make_config_dict(scheduler=scheduler, num_replicas=2, output={"record_steps": True})),
                  folder)
        runs.append(str(folder))
    assert main(["plot", *runs, "--kind", "cdf", "--out", str(tmp_path / "cdf.svg")]) == 0
    assert main(["plot", runs[0], "--kind", "timeseries", "--out", str(tmp_path / "ts.pdf")]) == 0
    assert (tmp_path / "cdf.svg").stat().st_size > 1000 and (tmp_path / "ts.pdf").stat().st_size > 1000
    assert main(["plot", str(tmp_path / "nothing"), "--kind", "cdf", "--out", str(tmp_path / "x.png")]) == 2


def test_pareto_of_a_sweep_of_one_cost_says_what_it_needs(reference_24, tmp_path, capsys):
    out, _ = reference_24
    assert main(["plot", str(out / "results.parquet"), "--kind", "pareto", "--out", str(tmp_path / "p.png")]) == 2
    assert "pareto needs points of different cost" in capsys.readouterr().err


def test_a_sweep_folder_is_not_a_run(reference_24, tmp_path, capsys):
    out, _ = reference_24
    assert main(["plot", str(out), "--kind", "cdf", "--out", str(tmp_path / "c.png")]) == 2
    assert "is a sweep folder; cdf needs run folders" in capsys.readouterr().err


def test_timeseries_of_a_run_without_steps_says_how_to_get_them(tmp_path, capsys):
    folder = tmp_path / "run"
    write_run(simulate(make_config_dict(num_replicas=1)), folder)
    assert main(["plot", str(folder), "--kind", "timeseries", "--out", str(tmp_path / "t.png")]) == 2
    assert "output.record_steps: true" in capsys.readouterr().err
