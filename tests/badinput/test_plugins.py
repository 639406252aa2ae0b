"""Issue 19, defect 1: a ``pkg.mod:Class`` name loads only a class implementing its seam."""

from __future__ import annotations

import sys

import pytest

from sim.errors import ConfigError
from sim.registry import SCHEDULERS
from tests.conftest import make_config
from tests.plugins.most_free_kv import NAME as PLUGIN_ROUTER


@pytest.mark.parametrize("name", ["sys:exit", "code:interact", "os:system", "builtins:exec", "subprocess:run",
                                  "importlib:import_module"])
def test_standard_library_callables_are_refused_unimported(name):
    module = name.partition(":")[0]
    was_loaded = module in sys.modules
    with pytest.raises(ConfigError, match=r"cluster\.router\.name: cannot load plug-in router .*part of Python"):
        make_config(router={"name": name})
    assert (module in sys.modules) == was_loaded  # refused before any import


def test_a_function_is_not_a_plugin():
    with pytest.raises(ConfigError, match="function is not a class"):
        make_config(router={"name": "tests.conftest:make_config"})


def test_a_class_outside_the_seam_is_refused_before_it_is_built():
    with pytest.raises(ConfigError, match=r"does not implement the router seam Router \(missing route\)"):
        make_config(router={"name": "sim.config:SLOConfig"})
    with pytest.raises(ConfigError, match="does not implement the scheduler seam"):
        make_config(scheduler={"name": PLUGIN_ROUTER})


class _RouteIsNotAMethod:
    route = 5


def test_a_seam_member_that_is_not_a_method_is_refused():
    with pytest.raises(ConfigError, match=r"missing route"):
        make_config(router={"name": f"{__name__}:_RouteIsNotAMethod"})


def test_malformed_and_failing_imports_are_named_errors():
    with pytest.raises(ConfigError, match="expected package.module:Class"):
        make_config(router={"name": "a..b:c"})
    with pytest.raises(ConfigError, match="No module named"):
        make_config(router={"name": "no_such_package.mod:Router"})


def test_a_proper_plugin_still_loads():
    assert make_config(router={"name": PLUGIN_ROUTER}).cluster.router.policy_cls.__name__ == "MostFreeKVRouter"


def test_every_builtin_passes_the_plugin_check():
    from sim import registry

    for reg in (registry.ROUTERS, registry.SCHEDULERS, registry.KV_MANAGERS, registry.COST_MODELS,
                registry.SPECULATORS, registry.CONTROLLERS, registry.WORKLOADS, registry.HANDOFFS):
        for name in reg.names():
            cls = reg.get(name)
            assert reg.load_plugin(f"{cls.__module__}:{cls.__name__}") is cls
    assert SCHEDULERS.protocol == "sim.engine.seams:Scheduler"
