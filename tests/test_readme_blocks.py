"""Every code block of the README is true: run, loaded, or compared with the file it names.

- ```bash blocks run (each ``&&`` step) in a scratch folder that links the repository's data;
  the two quickstart lines set up a virtual environment, so the test checks them against
  ``.ci/run`` (which CI runs from a clean clone) and runs their ``servesim`` / ``pytest`` part
  as the next block shows (the test command itself is this suite).
- plain blocks starting with ``$ COMMAND`` are a command and its output: the command runs and
  its output must match line by line (wall times excepted).
- ```yaml blocks are configs or fragments of one: a full config runs on its first requests, a
  fragment is merged into the quickstart config and runs; a block whose first line names a
  repository file (``# experiments/...``) must parse to the same YAML as that file.
- ```python blocks run (the "Adding a policy" files are run by tests/test_readme.py).
- ```text blocks are diagrams.
Commands that take long (a capacity search over the whole trace) carry the ``slow`` marker.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim import simulate
from sim.config import from_dict

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SLOW = ("servesim capacity",)
IGNORED_OUTPUT = re.compile(r"wall time|^\s*probe ")


def blocks() -> list[tuple[int, str, str]]:
    text = README.read_text()
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        out.append((text[:m.start()].count("\n") + 1, m.group(1), m.group(2)))
    return out


def _ids(kind: str) -> list:
    chosen = []
    for line, lang, body in blocks():
        if kind == "command" and lang == "" and body.startswith("$ "):
            slow = any(body[2:].startswith(s) for s in SLOW)
            chosen.append(pytest.param(body, id=f"line{line}", marks=[pytest.mark.slow] if slow else []))
        elif kind == lang and not (lang == "python" and body.startswith("# policies/")):
            chosen.append(pytest.param(body, id=f"line{line}"))
    return chosen


def test_every_block_has_a_known_kind():
    for line, lang, body in blocks():
        ok = lang in ("bash", "yaml", "python", "text") or (lang == "" and body.startswith("$ "))
        assert ok, f"README line {line}: a block must be bash, yaml, python, text or '$ command' + output"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder where README commands run: the repository's inputs linked in, outputs kept apart."""
    root = tmp_path_factory.mktemp("readme")
    for name in ("configs", "traces", "experiments", "docs", "policies", "hardware", "sim"):
        os.symlink(REPO / name, root / name)
    return root


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = shlex.split(command)
    if argv[0] == "servesim":
        argv = [sys.executable, "-m", "sim.tools.cli", *argv[1:]]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_quickstart_lines_are_what_ci_runs():
    bash = [body.strip() for _, lang, body in blocks() if lang == "bash"]
    setup, tests = bash[0], bash[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert setup.startswith("python3.11 -m venv .venv && . .venv/bin/activate && pip install -e . && ")
    assert setup.endswith("servesim run configs/quickstart.yaml")
    assert tests == 'python3.11 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && python -m pytest'
    assert 'pip install --quiet -e ".[test]"' in ci and "\npython -m pytest\n" in ci


@pytest.mark.parametrize("body", _ids("bash")[2:] if len(_ids("bash")) > 2 else [])
def test_bash_block_runs(body, scratch):
    for step in body.strip().split("&&"):
        done = _run(step.strip(), scratch)
        assert done.returncode == 0, f"{step.strip()}: {done.stderr[-2000:]}"


@pytest.mark.parametrize("body", _ids("command"))
def test_command_prints_what_the_readme_shows(body, scratch):
    command, *expected = body.rstrip("\n").split("\n")
    done = _run(command[2:], scratch)
    printed = (done.stdout + done.stderr).rstrip("\n").split("\n")
    keep = [ln for ln in expected if not IGNORED_OUTPUT.search(ln)]
    got = [ln for ln in printed if not IGNORED_OUTPUT.search(ln)]
    assert got == keep, f"{command}: the README shows\n" + "\n".join(keep) + "\nbut it prints\n" + "\n".join(got)


def _merge(base: dict, fragment: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("body", _ids("yaml"))
def test_yaml_block_is_true(body):
    first = body.splitlines()[0]
    named = re.match(r"#\s*(\S+\.ya?ml)", first)
    data = yaml.safe_load(body)
    if named and (REPO / named.group(1)).is_file():
        assert data == yaml.safe_load((REPO / named.group(1)).read_text()), f"differs from {named.group(1)}"
        return
    base = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    config = data if "workload" in data and "cluster" in data else _merge(base, data)
    config = _merge(config, {"engine": {"progress": False}})
    workload = config["workload"]
    limit = [{"name": "max_requests", "count": 150}]
    workload["transforms"] = [*(workload.get("transforms") or []), *limit]
    cwd = Path.cwd()
    os.chdir(REPO)  # the blocks' paths are relative to the repository
    try:
        res = simulate(from_dict(config))
    finally:
        os.chdir(cwd)
    s = res.summary
    assert s["num_requests"] == s["num_completed"] + s["num_rejected"] + s["num_unfinished"] > 0


@pytest.mark.parametrize("body", _ids("python"))
def test_python_block_runs(body):
    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        exec(compile(body, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)


def update_outputs(include_slow: bool = False) -> None:
    """Rewrite the output under every ``$ command`` block with what the command prints now
    (``python -m tests.test_readme_blocks --update [--slow]``; review the diff)."""
    import tempfile

    text = README.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("configs", "traces", "experiments", "docs", "policies", "hardware", "sim"):
            os.symlink(REPO / name, root / name)

        def redo(m: re.Match) -> str:
            body = m.group(2)
            command = body.split("\n", 1)[0]
            if not include_slow and any(command[2:].startswith(s) for s in SLOW):
                return m.group(0)
            done = _run(command[2:], root)
            return f"```\n{command}\n{(done.stdout + done.stderr).rstrip()}\n```"

        text = re.sub(r"^```()\n(\$ .*?)^```", redo, text, flags=re.S | re.M)
    README.write_text(text)


if __name__ == "__main__":
    if "--update" in sys.argv:
        update_outputs("--slow" in sys.argv)
