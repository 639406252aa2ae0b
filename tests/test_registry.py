"""Registries: built-in policies are found by walking their packages; plug-ins load by dotted name."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import sim.registry
from sim import simulate
from sim.errors import ConfigError
from sim.registry import BUILTIN_PACKAGES, ROUTERS, builtin_modules, builtin_sources, load_builtins
from tests.conftest import make_config
from tests.plugins.most_free_kv import NAME as PLUGIN_ROUTER

REPO = Path(__file__).resolve().parents[1]


def _module_files(package: str) -> list[str]:
    """Dotted names of the .py files under a package folder, skipping names that start with _."""
    root = REPO / package
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if path.name == "__init__.py":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts):
            continue
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("package", BUILTIN_PACKAGES)
def test_every_module_file_is_imported(package):
    load_builtins()
    files = _module_files(package)
    assert files and set(files) <= set(builtin_modules())
    missing = [name for name in files if name not in sys.modules]
    assert not missing, missing


def test_walk_finds_new_subpackages_and_skips_private_names(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepolicies"
    for rel in ("__init__.py", "a.py", "_hidden.py", "speculators/__init__.py", "speculators/draft.py",
                "_private/__init__.py", "_private/b.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("")
    (pkg / "_private" / "__init__.py").write_text("raise ImportError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert builtin_modules(("fakepolicies",)) == [
        "fakepolicies", "fakepolicies.a", "fakepolicies.speculators", "fakepolicies.speculators.draft"]
    assert "fakepolicies._private" not in sys.modules
    assert [name for name, _ in builtin_sources(("fakepolicies",))] == builtin_modules(("fakepolicies",))
    for name in [m for m in sys.modules if m.startswith("fakepolicies")]:
        monkeypatch.delitem(sys.modules, name)


def test_a_dotted_plugin_runs_through_a_simulation():
    cfg = make_config(router={"name": PLUGIN_ROUTER, "min_free_blocks": 10}, num_replicas=2)
    assert type(cfg.cluster.router.params).__name__ == "MostFreeKVParams"
    result = simulate(cfg)
    df = result.requests
    assert (df["state"] == "finished").all()
    assert set(df["replica"]) == {0, 1}
    assert PLUGIN_ROUTER not in ROUTERS.names()


def test_a_plugin_param_is_validated_like_a_builtin():
    with pytest.raises(ConfigError, match=r"cluster\.router\.min_free_blocks"):
        make_config(router={"name": PLUGIN_ROUTER, "min_free_blocks": -1})
    with pytest.raises(ConfigError, match="cannot load plug-in router"):
        make_config(router={"name": "tests.plugins.most_free_kv:NoSuchRouter"})


def test_sources_are_the_walked_modules_and_the_index_is_every_register_line(monkeypatch):
    """``builtin_sources`` lists what ``builtin_modules`` walks, without importing; the index built
    from them maps each name to the modules whose text has its ``@X.register("name")`` line."""
    sources = builtin_sources()
    assert [name for name, _ in sources] == [m for m in builtin_modules() if m in dict(sources)]
    assert {name for name, _ in sources} == set(builtin_modules())
    line = re.compile(r'^@[A-Z_]+\.register\("([^"]+)"\)', re.MULTILINE)
    expected: dict[str, list[str]] = {}
    for module, path in sources:
        for found in line.findall(Path(path).read_text(encoding="utf-8")):
            expected.setdefault(found, []).append(module)
    monkeypatch.setattr(sim.registry, "_policy_index", None)
    sim.registry._load_named("round_robin")
    assert sim.registry._policy_index == expected
    assert {"round_robin", "vllm", "paged", "splitwise"} <= set(expected)
