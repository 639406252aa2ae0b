"""The per-paper trend notebooks: current with their generator, naming real quick experiments, executable."""

from __future__ import annotations

import ast
import importlib.util
import re

import pytest

from tests.experiments.conftest import REPO

NOTEBOOKS = REPO / "experiments" / "notebooks"
GENERATOR = NOTEBOOKS / "make_trend_notebooks.py"
CHEAP = "trend_fairserve.ipynb"  # the one executed in the default suite (a few seconds)


def _generator():
    pytest.importorskip("nbformat", reason="nbformat is not installed (pip install 'servesim[notebook]')")
    spec = importlib.util.spec_from_file_location("make_trend_notebooks", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trend_notebooks() -> list[str]:
    return sorted(p.name for p in NOTEBOOKS.glob("trend_*.ipynb"))


def test_every_notebook_is_current_with_its_generator():
    expected = _generator().rendered()
    assert sorted(p.name for p in expected) == _trend_notebooks()  # none missing, none left over
    for path, text in expected.items():
        assert path.read_text() == text, f"{path.name} is stale: run python {GENERATOR.relative_to(REPO)}"


def _accepts_quick(script) -> bool:
    for node in ast.walk(ast.parse(script.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "--quick"):
            return True
    return False


@pytest.mark.parametrize("name", _trend_notebooks())
def test_every_experiment_in_a_notebook_exists_and_has_a_quick_mode(name):
    text = (NOTEBOOKS / name).read_text()
    scripts = re.findall(r"run_quick\(\\?'(\w+)\\?'", text)
    assert scripts, f"{name} runs no experiment"
    for script in scripts:
        path = REPO / "experiments" / f"{script}.py"
        assert path.exists(), f"{name} names {path.name}, which does not exist"
        assert _accepts_quick(path), f"{path.name} has no --quick flag"
        assert f"python experiments/{script}.py" in text  # the full command is stated


# experiments of the trends table with no quick mode, so no notebook (they are not paper-trend runs)
NO_NOTEBOOK = {"distserve_vs_colocated", "distserve_placement"}


def test_every_experiment_of_the_trends_table_has_a_notebook():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Paper trends reproduced"):]
    table = table[:table.index("\n## ")]
    named = set(re.findall(r"python experiments/(\w+)\.py", table)) - NO_NOTEBOOK
    in_notebooks = {s for name in _trend_notebooks()
                    for s in re.findall(r"run_quick\(\\?'(\w+)\\?'", (NOTEBOOKS / name).read_text())}
    assert named, "no experiment found in the trends table"
    assert sorted(named - in_notebooks) == [], f"add these to PAPERS in {GENERATOR.name} and rerun it"


def test_every_experiment_that_draws_resolves_its_folder_through_figure_dir():
    # so a quick run from a test or a notebook (SERVESIM_FIGURES_DIR) never overwrites docs/
    drawing = [p for p in sorted((REPO / "experiments").glob("*.py")) if "savefig" in p.read_text()]
    assert drawing
    assert [p.name for p in drawing if "figure_dir(" not in p.read_text()] == []


def test_figure_dir_honours_the_environment(tmp_path, monkeypatch):
    from sim.tools.figures import ENV, QUICK_DEFAULT, ROOT, figure_dir

    monkeypatch.delenv(ENV, raising=False)
    assert figure_dir(False) == ROOT / "docs"
    assert figure_dir(True, quick_default=tmp_path / "q") == tmp_path / "q" and (tmp_path / "q").is_dir()
    assert QUICK_DEFAULT.parent.name == "runs"
    monkeypatch.setenv(ENV, str(tmp_path / "env"))
    assert figure_dir(False) == figure_dir(True) == tmp_path / "env"


def _execute(name: str, tmp_path, monkeypatch) -> list:
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install 'servesim[notebook]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install 'servesim[notebook]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install 'servesim[notebook]')")
    docs_before = {p: p.stat().st_mtime_ns for p in (REPO / "docs").glob("*")}
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's temporary figure folders
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.get("name") == "stdout" and o.get("text", "").strip() for o in outputs)  # the printed table
    assert {p: p.stat().st_mtime_ns for p in (REPO / "docs").glob("*")} == docs_before  # docs/ untouched
    return outputs


def test_the_cheap_trend_notebook_executes(tmp_path, monkeypatch):
    outputs = _execute(CHEAP, tmp_path, monkeypatch)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure was shown
    assert (tmp_path / next(p.name for p in tmp_path.iterdir()) / "fairserve_apps.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", _trend_notebooks())
def test_every_trend_notebook_executes(name, tmp_path, monkeypatch):
    _execute(name, tmp_path, monkeypatch)
