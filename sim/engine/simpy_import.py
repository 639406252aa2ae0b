"""Import SimPy without ``importlib.metadata``: about 40 ms of every run's start-up.

SimPy's package ``__init__`` sets ``__version__`` with ``importlib.metadata.version("simpy")``;
importing ``importlib.metadata`` pulls in ``email``, ``zipfile``, ``csv``, ``socket`` and
``urllib`` (about 36 ms here, 4-5 ms more for the lookup: some 15% of servesim's import-to-first-event
time) and nothing else servesim runs needs them. ``import_simpy()`` imports SimPy with a
stand-in for that one call: a module whose ``version(name)`` reads the version from the
``NAME-VERSION.dist-info`` folder beside the package, and falls back to the real
``importlib.metadata`` where there is none. The stand-in is in ``sys.modules`` only while SimPy's
``__init__`` runs; afterwards ``import importlib.metadata`` gives the real module as always.
Where ``importlib.metadata`` is already imported (pytest imports it) SimPy is imported plainly.
``sim.engine``'s package ``__init__`` calls this, so it runs before any engine module's
``import simpy``; importing ``simpy`` first anywhere else is equally correct, only slower.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

_METADATA = "importlib.metadata"


def dist_info_version(package_dir: str, name: str) -> str | None:
    """The version in the name of ``NAME-VERSION.dist-info`` beside ``package_dir`` (the wheel
    layout pip installs), or None where there is no single such folder."""
    prefix = f"{name.lower()}-"
    found = [e for e in os.listdir(os.path.dirname(package_dir))
             if e.lower().startswith(prefix) and e.endswith(".dist-info")]
    if len(found) != 1:
        return None
    return found[0][len(prefix):-len(".dist-info")]


def _stand_in(package_dir: str) -> types.ModuleType:
    """A module with the one function SimPy's ``__init__`` calls."""
    module = types.ModuleType(_METADATA)

    def version(name: str) -> str:
        found = dist_info_version(package_dir, name)
        if found is not None:
            return found
        del sys.modules[_METADATA]  # no dist-info folder: ask the real module
        return importlib.import_module(_METADATA).version(name)

    module.version = version
    return module


def import_simpy() -> types.ModuleType:
    """``import simpy``, without importing ``importlib.metadata`` where that can be avoided."""
    if "simpy" in sys.modules or _METADATA in sys.modules:
        import simpy

        return simpy
    import importlib.util

    spec = importlib.util.find_spec("simpy")
    if spec is None or not spec.submodule_search_locations:
        import simpy  # not installed as a package folder: let the import say what is wrong

        return simpy
    stand_in = _stand_in(list(spec.submodule_search_locations)[0])
    sys.modules[_METADATA] = stand_in
    importlib.metadata = stand_in  # SimPy reads the attribute after ``import importlib.metadata``
    try:
        import simpy
    finally:
        if sys.modules.get(_METADATA) is stand_in:
            del sys.modules[_METADATA]
        if getattr(importlib, "metadata", None) is stand_in:
            del importlib.metadata
    return simpy
