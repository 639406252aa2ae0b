"""A test controller replaying a script of actions, loaded by its dotted name
``tests.plugins.scripted_controller:Scripted`` (tests/test_lifecycle.py).

In a module of its own, without tests: loading the plug-in from inside a hypothesis test then
imports nothing that declares ``@given`` tests (a test module imported again under another name,
as pytest-xdist's workers may, trips hypothesis' nesting check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.engine.seams import Action, AddReplica, ControllerBase, DrainReplica, Migrate, SetKnob
from sim.schema import param

NAME = "tests.plugins.scripted_controller:Scripted"


@dataclass
class ScriptedParams:
    """Actions at given times: [time_s, 'add', pool] | [time_s, 'drain', id] | [time_s, 'knob', target, name, value]
    | [time_s, 'migrate', request, dst] | [time_s, 'bogus']."""

    period_s: float = param(1.0, gt=0)
    script: list[list[Any]] = param(default_factory=list)


class Scripted(ControllerBase):
    """A test controller replaying a script (loaded as the plug-in ``NAME``)."""

    Params = ScriptedParams

    def __init__(self, params: ScriptedParams, ctx):
        super().__init__(params, ctx)
        self.todo = sorted(params.script, key=lambda row: row[0])

    def act(self, cluster, now_s: float) -> list[Action]:
        out: list[Any] = []
        while self.todo and self.todo[0][0] <= now_s + 1e-9:
            _t, what, *args = self.todo.pop(0)
            out.append(_action(what, args))
        return out


def _action(what: str, args: list[Any]) -> Any:
    if what == "add":
        return AddReplica(args[0])
    if what == "drain":
        return DrainReplica(args[0])
    if what == "knob":
        return SetKnob(*args)
    if what == "migrate":
        return Migrate(args[0], args[1])
    return "not an action"
