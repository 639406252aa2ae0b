"""Start-up imports: what ``import sim.api`` loads (and leaves out), and SimPy imported without
``importlib.metadata`` (``sim/engine/simpy_import.py``), checked in fresh interpreters."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from sim.engine.simpy_import import dist_info_version

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("importlib.metadata", "pandas", "pyarrow", "matplotlib", "yaml", "email", "zipfile")


def _fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_sim_api_leaves_out_the_heavy_modules_and_simpy_keeps_its_version():
    got = _fresh("import json, sys; import sim.api, simpy; "
                 f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules], "
                 "'version': simpy.__version__, 'env': simpy.Environment.__module__}))")
    assert got["loaded"] == []
    assert got["version"] == importlib.metadata.version("simpy")
    assert got["env"] == "simpy.core"


def test_the_real_importlib_metadata_is_there_afterwards():
    got = _fresh("import json, sys, importlib; import sim.api; import importlib.metadata as md; "
                 "print(json.dumps({'file': md.__file__, 'attr': importlib.metadata is md, "
                 "'numpy': md.version('numpy')}))")
    assert got["file"] == importlib.metadata.__file__
    assert got["attr"] is True
    assert got["numpy"] == importlib.metadata.version("numpy")


def test_without_a_dist_info_folder_the_real_lookup_answers():
    """The stand-in asks the real ``importlib.metadata`` where it finds no dist-info folder (the module
    is loaded from its file alone, so that ``sim.engine``'s own import of SimPy does not run first)."""
    code = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("probe", {str(REPO / "sim" / "engine" / "simpy_import.py")!r})
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)
probe.dist_info_version = lambda package_dir, name: None
simpy = probe.import_simpy()
md = sys.modules["importlib.metadata"]
print(json.dumps({{"version": simpy.__version__, "real": md.__file__ is not None, "same": importlib.metadata is md}}))
"""
    got = _fresh(code)
    assert got == {"version": importlib.metadata.version("simpy"), "real": True, "same": True}


def test_with_importlib_metadata_already_imported_simpy_is_imported_plainly():
    got = _fresh("import importlib.metadata, json, sys; import sim.engine, simpy; "
                 "print(json.dumps({'same': sys.modules['importlib.metadata'] is importlib.metadata, "
                 "'version': simpy.__version__}))")
    assert got == {"same": True, "version": importlib.metadata.version("simpy")}


def test_dist_info_version_reads_the_folder_name(tmp_path):
    (tmp_path / "simpy").mkdir()
    assert dist_info_version(str(tmp_path / "simpy"), "simpy") is None
    (tmp_path / "simpy-4.1.2.dist-info").mkdir()
    (tmp_path / "simpyx-9.9.dist-info").mkdir()
    assert dist_info_version(str(tmp_path / "simpy"), "simpy") == "4.1.2"
    (tmp_path / "SimPy-4.0.dist-info").mkdir()  # two candidates: not sure, so no answer
    assert dist_info_version(str(tmp_path / "simpy"), "simpy") is None
