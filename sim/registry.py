"""One registry per kind of pluggable policy: routers, schedulers, KV managers, cost models,
speculation, controllers, workloads and prefill-to-decode hand-offs.

A registry is a dict from YAML name to a class, filled by a decorator at the definition site::

    @SCHEDULERS.register("sarathi")
    class SarathiScheduler:
        Params = SarathiParams      # a dataclass: the policy's typed parameter block
        def __init__(self, params, ctx): ...

An unknown name raises ConfigError listing the choices with a "did you mean". A dotted
``package.module:Class`` name loads an out-of-tree plug-in without registering it, under one
rule, so that a config written by someone else can name only policies:

- the module must not be part of Python itself (``sys.stdlib_module_names``, builtins: ``os``,
  ``sys``, ``subprocess``, ``code``, ``builtins`` ...): it is refused before it is imported;
- ``Class`` must be a class (not a function or any other callable) that implements its kind's
  seam: every method of the seam's protocol (``sim.engine.seams``; ``sim.cost.CostModel`` and
  ``sim.workload.Workload`` for cost models and workloads), as a subclass or structurally.

Anything else is a ConfigError before any of the plug-in's own code runs (the check reads the
class; it is instantiated only when the run builds it).

Built-in policies are found, not listed: ``load_builtins()`` imports every module under the
packages ``policies``, ``hardware`` and ``traces`` (subpackages included), so adding a policy
is adding one file. Modules and packages whose name starts with ``_`` are skipped.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from sim.errors import ConfigError

BUILTIN_PACKAGES = ("policies", "hardware", "traces")
_builtins_loaded = False
_policy_index: dict[str, list[str]] | None = None
# a decorator line ``@NAMES.register("name")``; searched in the bytes with the newline before it (a
# literal prefix re finds fast; the file's text gets a newline in front so its first line counts too)
_REGISTER = re.compile(rb'\n@[A-Z_]+\.register\("([^"]+)"\)')


def builtin_modules(packages: tuple[str, ...] = BUILTIN_PACKAGES) -> list[str]:
    """Dotted names of every module under ``packages`` (packages themselves included), sorted:
    the modules ``builtin_sources`` lists. As with ``pkgutil.walk_packages``, a folder is a
    subpackage where it has an ``__init__.py``; unlike it, nothing is imported, and a module or
    package whose name starts with ``_`` is neither listed nor entered."""
    return sorted({*packages, *(name for name, _ in builtin_sources(packages))})


def load_builtins() -> None:
    """Import every built-in module, which registers its policies (idempotent)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for name in builtin_modules():
        importlib.import_module(name)


def builtin_sources(packages: tuple[str, ...] = BUILTIN_PACKAGES) -> list[tuple[str, str]]:
    """``(dotted name, source path)`` of every ``.py`` module under ``packages`` that
    ``builtin_modules`` names, found by listing folders, without importing anything: only
    the top-level packages' locations are looked up (``importlib.util.find_spec``). A folder
    is a subpackage where it has an ``__init__.py``, as for ``pkgutil.iter_modules``; names
    starting with ``_`` are skipped (``__pycache__`` with them)."""
    found: list[tuple[str, str]] = []

    def walk(package: str, folder: str) -> None:
        init = os.path.join(folder, "__init__.py")
        if os.path.isfile(init):
            found.append((package, init))
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("_"):
                    continue
                if entry.is_dir():
                    if os.path.isfile(os.path.join(entry.path, "__init__.py")):
                        walk(f"{package}.{entry.name}", entry.path)
                elif entry.name.endswith(".py"):
                    found.append((f"{package}.{entry.name[:-3]}", entry.path))

    for package in packages:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or ()) if spec is not None else ():
            walk(package, folder)
    return sorted(found)


def _load_named(name: str) -> None:
    """Import the built-in modules whose source registers ``name``, read from an index
    of their ``@REGISTRY.register("name")`` lines (built once from the source files, without
    importing anything: ``builtin_sources``), so that a run imports only the policies it names.
    A name the index lacks falls back to ``load_builtins()`` in ``Registry.get``, so lookups and
    their errors are as before."""
    global _policy_index
    if _policy_index is None:
        _policy_index = {}
        for module, path in builtin_sources():
            with open(path, "rb") as f:
                source = f.read()
            if b'.register("' not in source:  # about half the modules register nothing
                continue
            for found in _REGISTER.findall(b"\n" + source):
                _policy_index.setdefault(found.decode("utf-8"), []).append(module)
    for module in _policy_index.get(name, ()):
        importlib.import_module(module)


def _protocol_methods(protocol: type) -> list[str]:
    """The public methods (and properties) a protocol or base class asks for, in the order written."""
    return [n for n, v in vars(protocol).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))]


def _lacks(cls: type, protocol: type, name: str) -> bool:
    """Whether ``cls`` lacks member ``name`` of ``protocol`` (a method must be callable)."""
    have = inspect.getattr_static(cls, name, None)
    if have is None:
        return True
    return callable(vars(protocol)[name]) and not callable(getattr(cls, name, None))


def _resolve(dotted: str) -> type:
    module_name, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class Registry:
    """A named mapping from policy name to class, with helpful lookup errors.

    ``protocol`` (``"module:Name"``, resolved on first use) is the seam a plug-in must implement.
    """

    def __init__(self, kind: str, protocol: str | None = None):
        self.kind = kind
        self.protocol = protocol
        self._entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Class decorator that registers ``cls`` under ``name``."""

        def decorate(cls: Any) -> Any:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = cls
            cls.registered_name = name
            return cls

        return decorate

    def names(self) -> list[str]:
        """Registered names, sorted."""
        load_builtins()
        return sorted(self._entries)

    def get(self, name: str, where: str = "") -> Any:
        """The class registered as ``name`` (or loaded from ``pkg.mod:Class``)."""
        if name not in self._entries and not _builtins_loaded:
            _load_named(name)
        if name not in self._entries:
            load_builtins()
        if name in self._entries:
            return self._entries[name]
        if ":" in name:
            return self.load_plugin(name, where)
        choices = ", ".join(sorted(self._entries)) or "(none)"
        close = difflib.get_close_matches(name, self._entries, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {self.kind} {name!r}{hint} (choices: {choices})", where)

    def load_plugin(self, name: str, where: str = "") -> type:
        """The class a ``package.module:Class`` name points at, checked against the seam (see the
        module docstring): standard-library modules are refused unimported, non-classes and
        classes lacking the seam's methods are refused uninstantiated."""
        module_name, _, attr = name.partition(":")
        prefix = f"cannot load plug-in {self.kind} {name!r}"
        if not module_name or not attr or not all(p.isidentifier() for p in module_name.split(".") + [attr]):
            raise ConfigError(f"{prefix}: expected package.module:Class", where)
        top = module_name.split(".")[0]
        if top in sys.stdlib_module_names or top in sys.builtin_module_names:
            raise ConfigError(f"{prefix}: {top!r} is part of Python, not a plug-in", where)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any failure of a plug-in import is the config's fault
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"{prefix}: {reason}", where) from None
        obj = getattr(module, attr, None)
        if obj is None:
            raise ConfigError(f"{prefix}: module {module_name!r} has no attribute {attr!r}", where)
        if not isinstance(obj, type):
            raise ConfigError(f"{prefix}: {type(obj).__name__} is not a class", where)
        if self.protocol is not None:
            protocol = _resolve(self.protocol)
            missing = [m for m in _protocol_methods(protocol) if _lacks(obj, protocol, m)]
            if missing:
                raise ConfigError(f"{prefix}: {obj.__name__} does not implement the {self.kind} seam "
                                  f"{protocol.__name__} (missing {', '.join(missing)})", where)
        return obj

    def __contains__(self, name: str) -> bool:
        load_builtins()
        return name in self._entries


ROUTERS = Registry("router", "sim.engine.seams:Router")
SCHEDULERS = Registry("scheduler", "sim.engine.seams:Scheduler")
KV_MANAGERS = Registry("kv manager", "sim.engine.seams:KVManager")
COST_MODELS = Registry("cost model", "sim.cost:CostModel")
SPECULATORS = Registry("speculator", "sim.engine.seams:Speculator")
CONTROLLERS = Registry("controller", "sim.engine.seams:Controller")
WORKLOADS = Registry("workload", "sim.workload:Workload")
HANDOFFS = Registry("handoff", "sim.engine.seams:Handoff")
PREDICTORS = Registry("predictor", "sim.engine.seams:Predictor")

# every kind, in the order listings show them
REGISTRIES = (ROUTERS, SCHEDULERS, KV_MANAGERS, COST_MODELS, HANDOFFS, SPECULATORS, CONTROLLERS, PREDICTORS,
              WORKLOADS)
