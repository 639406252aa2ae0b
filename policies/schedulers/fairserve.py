"""FairServe's scheduler: a weighted service counter per user whose token charges are weighted
by the application's typical lengths (Khan et al., "Ensuring Fair LLM Serving Amid Diverse
Applications", 2024; only the abstract's description is public, so the details below are
this simulator's choices, exposed as parameters).

It is VTC (policies/schedulers/vtc.py: lift on arrival, smallest counter first, charges at
admission and per generated token) with one change: a request of application a is charged

    w_p x input_tokens x (L_in / L_in[a])  +  w_q x per generated token x (L_out / L_out[a])

(divided by the user's weight), where L_in[a], L_out[a] are a's typical prompt and answer
lengths and L_in, L_out those over all applications. A user of an application whose calls
are long by nature (summarisation, agents) is then not counted as a heavier user than a chat
user sending as many calls: service is measured in "typical calls of the user's app".
Typical lengths are given (``app_lengths``), or learned as the running mean of the finished
requests of each app (starting from ``default_input_tokens`` / ``default_output_tokens``),
taken in when the counters are next brought up to date (at arrivals and admissions).
Throttling lives in the ``fairserve`` router (policies/routers/fairserve.py), which also
shares one state per pool across replicas.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.schedulers.vtc import ANON, VTCParams, VTCScheduler, VTCState
from sim.engine.views import RequestView
from sim.errors import ConfigError
from sim.registry import SCHEDULERS
from sim.schema import param


@dataclass
class FairServeParams(VTCParams):
    """VTC's parameters plus the applications' typical lengths."""

    app_lengths: dict[str, list[float]] = param(default_factory=dict,
                                                doc="app -> [typical input, typical output] tokens (fixed)")
    learn_lengths: bool = param(True, doc="learn the typical lengths of apps not in app_lengths from finishes")
    default_input_tokens: float = param(1000.0, gt=0, doc="typical prompt of an app before anything finished")
    default_output_tokens: float = param(200.0, gt=0, doc="typical answer of an app before anything finished")

    def validate(self) -> None:
        super().validate()
        for app, pair in self.app_lengths.items():
            if len(pair) != 2 or not all(x > 0 for x in pair):
                raise ConfigError(f"needs [input, output] > 0, got {pair}", f"app_lengths.{app}")


@dataclass
class FairServeState(VTCState):
    """VTC's counters with charges scaled by the applications' typical lengths."""

    def __post_init__(self) -> None:
        self.app_sums: dict[str, list[float]] = {}   # app -> [sum input, sum output, count]
        self.all_sums = [0.0, 0.0, 0.0]

    def typical(self, app: str | None) -> tuple[float, float]:
        """(typical input, typical output) tokens of ``app``."""
        p = self.params
        key = app if app is not None else ANON
        if key in p.app_lengths:
            a, b = p.app_lengths[key]
            return float(a), float(b)
        s = self.app_sums.get(key)
        if not p.learn_lengths or s is None or not s[2]:
            return p.default_input_tokens, p.default_output_tokens
        return s[0] / s[2], s[1] / s[2]

    def overall(self) -> tuple[float, float]:
        """Typical lengths over all applications (fixed ones averaged with the learned)."""
        p = self.params
        if p.app_lengths and not self.all_sums[2]:
            n = len(p.app_lengths)
            return (sum(v[0] for v in p.app_lengths.values()) / n, sum(v[1] for v in p.app_lengths.values()) / n)
        if not self.all_sums[2]:
            return p.default_input_tokens, p.default_output_tokens
        s = self.all_sums
        return s[0] / s[2], s[1] / s[2]

    def scales(self, req: RequestView, client: str) -> tuple[float, float]:
        t_in, t_out = self.typical(req.app)
        a_in, a_out = self.overall()
        w = self.weight(client)
        return a_in / t_in / w, a_out / t_out / w

    def finished(self, req: RequestView) -> None:
        key = req.app if req.app is not None else ANON
        s = self.app_sums.setdefault(key, [0.0, 0.0, 0.0])
        for acc in (s, self.all_sums):
            acc[0] += req.input_tokens
            acc[1] += req.num_output_tokens
            acc[2] += 1


@SCHEDULERS.register("fairserve")
class FairServeScheduler(VTCScheduler):
    """VTC with token charges weighted by each application's typical lengths."""

    Params = FairServeParams
    State = FairServeState

    @classmethod
    def example_config(cls) -> dict:
        """FairServe on one replica under load: eight users, two apps (one with 4x longer prompts)."""
        data = VTCScheduler.example_config()
        data["workload"]["transforms"] = [
            {"name": "assign_clients", "num_clients": 8, "weights": [7, 1, 1, 1, 1, 1, 1, 1]},
            {"name": "assign_apps", "apps": {"chat": 1.0, "summarize": 1.0}}]
        data["cluster"]["pools"][0]["scheduler"] = {"name": "fairserve", "default_input_tokens": 500}
        return data
