"""The ``agentic`` workload: jobs made of several LLM calls with one end-to-end deadline.

A job arrives by an arrival process and is one of two shapes::

    chain:   call1 -> tool -> call2 -> tool -> ... -> callN      (each prompt extends the last
                                                               prompt + answer + tool output)
    fanout:  call1 ... callK in parallel (same task prefix)  -> aggregate call
             (the aggregate prompt = task prompt + every branch's answer)

Every call of job j has ``job = j``, ``client = "job<j>"``, ``app = "agent"`` and
``deadline_s = job arrival + deadline_s`` (absolute). Calls after the first depend on
finish times, so the workload is closed loop: ``initial_requests`` yields each job's first
call(s) in arrival order and ``on_done`` returns the job's next call. A rejected call fails
its job. ``describe()`` reports jobs done, failed and done within their deadline::

    workload:
      name: agentic
      num_jobs: 100
      arrival: {name: poisson, rate_rps: 0.5}
      shape: chain
      calls_per_job: 4
      tool_time_s: 0.5
      deadline_s: 60
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sim.engine.request import Request, State
from sim.errors import ConfigError
from sim.registry import WORKLOADS
from sim.schema import param
from sim.workload import Workload
from traces.arrivals import ArrivalSpec, poisson
from traces.lengths import LengthsConfig
from traces.prefix import Conversation, IdSource
from traces.sessions import default_lengths, think_gap
from traces.stream import make_request


@dataclass
class AgenticParams:
    """Multi-call jobs (chains or fan-outs) with an end-to-end deadline."""

    num_jobs: int = param(100, ge=1, doc="jobs to generate")
    rate_rps: float = param(0.5, gt=0, doc="job arrival rate (Poisson) if no arrival:")
    arrival: ArrivalSpec | None = param(None, doc="job arrival process")
    shape: Literal["chain", "fanout"] = param("chain", doc="sequential calls, or parallel calls then an aggregate")
    calls_per_job: int = param(4, ge=1, doc="chain length / fan-out width (lower bound if *_max set)")
    calls_per_job_max: int | None = param(None, ge=1, doc="calls uniform on [calls_per_job, calls_per_job_max]")
    tool_time_s: float = param(0.5, ge=0, doc="mean tool execution time between chained calls")
    tool_time: Literal["exponential", "fixed"] = param("exponential", doc="tool time distribution")
    tool_output_tokens: int = param(200, ge=0, doc="tokens a tool result (or branch task) adds to the prompt")
    deadline_s: float | None = param(None, gt=0, doc="end-to-end budget of a job from its arrival")
    input_tokens: int = param(1000, ge=1, doc="task prompt tokens (if no lengths:)")
    output_tokens: int = param(150, ge=1, doc="tokens per call answer (if no lengths:)")
    lengths: LengthsConfig | None = param(None, doc="task prompt and per-call answer lengths")
    system_prompt_tokens: int = param(0, ge=0, doc="prompt prefix shared by every job")
    prefix_block_tokens: int = param(16, ge=1, doc="tokens per prefix id")
    ttft_slo_s: float | None = param(None, gt=0, doc="per-call TTFT SLO")
    tpot_slo_s: float | None = param(None, gt=0, doc="per-call TPOT SLO")

    def validate(self) -> None:
        if self.calls_per_job_max is not None and self.calls_per_job_max < self.calls_per_job:
            raise ConfigError("must be >= calls_per_job", "calls_per_job_max")


class _Job:
    """One job's progress."""

    __slots__ = ("index", "arrival_s", "deadline_s", "num_calls", "done", "pending", "failed",
                 "conversation", "branch_outputs")

    def __init__(self, index: int, arrival_s: float, deadline_s: float | None, num_calls: int, conv: Conversation):
        self.index, self.arrival_s, self.deadline_s = index, arrival_s, deadline_s
        self.num_calls, self.done, self.pending, self.failed = num_calls, 0, 0, False
        self.conversation = conv
        self.branch_outputs = 0


@WORKLOADS.register("agentic")
class AgenticWorkload(Workload):
    """Chains or fan-outs of calls per job, issued as earlier calls finish."""

    Params = AgenticParams
    closed_loop = True

    def __init__(self, params: AgenticParams):
        self.params = params
        self.process = params.arrival.build() if params.arrival is not None else poisson(params.rate_rps)
        self.lengths = default_lengths(params.lengths, params.input_tokens, params.output_tokens)
        self._reset()

    def _reset(self) -> None:
        p = self.params
        self.counts: Counter = Counter(num_jobs=0, num_calls=0, num_jobs_done=0, num_jobs_failed=0,
                                       num_jobs_met_deadline=0)
        self._ids = IdSource()
        self._system_ids = self._ids.take(p.system_prompt_tokens // p.prefix_block_tokens)
        self._owner: dict[int, _Job] = {}
        self._next_id = 0

    def _call(self, job: _Job, conv: Conversation, new_tokens: int, n_out: int, t: float) -> Request:
        p = self.params
        n_in, hashes = conv.prompt(new_tokens)
        conv.extend(n_in, hashes, n_out)
        req = make_request(
            self._next_id, t, n_in, n_out, self.counts, client=f"job{job.index}", app="agent",
            session=job.index, job=job.index, deadline_s=job.deadline_s, prefix_hashes=hashes,
            prefix_block_tokens=p.prefix_block_tokens, ttft_slo_s=p.ttft_slo_s, tpot_slo_s=p.tpot_slo_s,
        )
        self._next_id += 1
        self._owner[req.id] = job
        job.pending += 1
        self.counts["num_calls"] += 1
        return req

    def _output(self, rng: np.random.Generator) -> int:
        return int(self.lengths.sample(rng, 1)[1][0])

    def initial_requests(self, rng: np.random.Generator) -> Iterator[Request]:
        """The first call of each chain, or every branch of each fan-out, by job arrival."""
        self._reset()
        p = self.params
        starts = self.process.times(rng, p.num_jobs)
        for j, t in enumerate(starts.tolist()):
            n = p.calls_per_job
            if p.calls_per_job_max is not None:
                n = int(rng.integers(p.calls_per_job, p.calls_per_job_max + 1))
            task_in, _ = self.lengths.sample(rng, 1)
            conv = Conversation(self._ids, p.prefix_block_tokens, p.system_prompt_tokens, self._system_ids)
            deadline = None if p.deadline_s is None else t + p.deadline_s
            job = _Job(j, t, deadline, n, conv)
            self.counts["num_jobs"] += 1
            if p.shape == "chain":
                yield self._call(job, conv, int(task_in[0]), self._output(rng), t)
            else:
                # The task prompt is the shared context of every branch.
                conv.extend(*conv.prompt(int(task_in[0])), 0)
                for _ in range(n):
                    yield self._call(job, conv.fork(), p.tool_output_tokens, self._output(rng), t)

    def on_done(self, request: Request, now_s: float, rng: np.random.Generator) -> Request | None:
        job = self._owner.pop(request.id, None)
        if job is None:
            return None
        job.pending -= 1
        job.done += 1
        if request.state == State.REJECTED and not job.failed:
            job.failed = True
            self.counts["num_jobs_failed"] += 1
        if job.failed:
            return None
        p = self.params
        if p.shape == "chain":
            if job.done < job.num_calls:
                t = now_s + think_gap(rng, p.tool_time_s, p.tool_time)
                return self._call(job, job.conversation, p.tool_output_tokens, self._output(rng), t)
        else:
            job.branch_outputs += request.output_tokens
            if job.done == job.num_calls and job.pending == 0:
                return self._call(job, job.conversation, job.branch_outputs, self._output(rng), now_s)
        if job.pending == 0:
            self._finish(job, now_s)
        return None

    def _finish(self, job: _Job, now_s: float) -> None:
        self.counts["num_jobs_done"] += 1
        if job.deadline_s is None or now_s <= job.deadline_s:
            self.counts["num_jobs_met_deadline"] += 1

    def describe(self) -> dict[str, Any]:
        return {f"workload_{k}": v for k, v in self.counts.items()}
