"""The README's "Adding a policy" examples are complete: extracted, imported and run."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from sim import simulate
from sim.registry import ROUTERS, SCHEDULERS
from tests.conftest import make_config

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> dict[str, str]:
    text = README.read_text()
    section = text[text.index("## Adding a policy"):]
    section = section[: section.index("\n## ", 3)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    out = {}
    for block in blocks:
        first = block.splitlines()[0]
        assert first.startswith("# policies/"), "each example starts with the path of its file"
        out[first[2:].strip()] = block
    return out


def _load(tmp_path: Path, rel: str, source: str):
    path = tmp_path / Path(rel).name
    path.write_text(source)
    name = f"readme_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def examples(tmp_path):
    registered = []
    loaded = {}
    for rel, source in _examples().items():
        loaded[rel] = _load(tmp_path, rel, source)
    for registry in (SCHEDULERS, ROUTERS):
        for name in ("shortest_prompt_first", "most_free_kv"):
            if name in registry._entries:
                registered.append((registry, name))
    yield loaded
    for registry, name in registered:
        registry._entries.pop(name, None)


def test_readme_has_a_scheduler_and_a_router_example():
    assert set(_examples()) == {"policies/schedulers/shortest_prompt_first.py", "policies/routers/most_free_kv.py"}


def test_readme_examples_run(examples):
    workload = {"name": "synthetic", "num_requests": 300, "rate_rps": 40.0, "input_tokens": 32,
                "input_tokens_max": 1500, "output_tokens": 4, "output_tokens_max": 64}
    fifo = simulate(make_config(scheduler="vllm_v1", workload=workload)).summary
    spf = simulate(make_config(scheduler={"name": "shortest_prompt_first", "max_num_batched_tokens": 2048},
                               router="most_free_kv", num_replicas=2, workload=workload)).summary
    assert spf["num_completed"] == spf["num_requests"] == 300
    one = simulate(make_config(scheduler="shortest_prompt_first", workload=workload)).summary
    # shortest-first cuts the median wait against FCFS under the same load (the classic SJF trend)
    assert one["queueing_p50_s"] < fifo["queueing_p50_s"]
    # the out-of-tree spelling reaches the same class
    module = examples["policies/schedulers/shortest_prompt_first.py"]
    plug = simulate(make_config(scheduler=f"{module.__name__}:ShortestPromptFirst", workload=workload)).summary
    assert plug["queueing_p50_s"] == one["queueing_p50_s"]
