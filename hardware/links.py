"""Interconnects: link specs, transfer and collective times, and a fair-shared SimPy link.

A lone transfer of ``n`` bytes takes ``latency + n / bandwidth``. On a ``SharedLink``
concurrent transfers split the bandwidth equally (processor sharing), the rate of each being
recomputed whenever one starts or ends (in closed form: SimPy events only while a process waits)::

    rate per transfer
      bw |#####A#####|
    bw/2 |           |##A##|##B##|      B starts: A and B share; A ends: B gets it all
         +-----------+-----+-----+-----> t
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from heapq import heappush
from typing import Any

from simpy.events import PENDING, Event

from hardware.calibration_constants import ALLREDUCE_ALGOS, AllReduceAlgo


@dataclass(frozen=True)
class LinkSpec:
    """One kind of link: per-direction bandwidth and one-way latency."""

    name: str
    gbps: float  # GB/s per direction (1e9 bytes/s)
    latency_s: float
    notes: str = ""


# Latencies are typical published one-way figures for a small message (uncertain, +-50%).
LINKS: dict[str, LinkSpec] = {
    link.name: link
    for link in (
        LinkSpec("nvlink3", 300.0, 2e-6, "A100 NVLink, per GPU through NVSwitch"),
        LinkSpec("nvlink4", 450.0, 2e-6, "H100/H200/GH200 NVLink, per GPU through NVSwitch"),
        LinkSpec("nvlink5", 900.0, 2e-6, "B200/GB200 NVLink"),
        LinkSpec("nvlink-c2c", 346.0, 1e-6, "GH200/GB200 CPU-GPU link: 450 nominal, 346 measured host->GPU"),
        LinkSpec("pcie4", 32.0 * 35 / 64, 5e-6, "PCIe4 x16: 32 nominal; ~55% reached by copies (assumed)"),
        LinkSpec("pcie5", 35.0, 5e-6, "PCIe5 x16: 64 nominal, ~35 measured host->GPU on one H100 host"),
        LinkSpec("pcie6", 70.0, 5e-6, "PCIe6 x16: 128 nominal, ~55% assumed"),
        LinkSpec("ib-hdr", 25.0, 5e-6, "InfiniBand HDR 200 Gb/s per NIC"),
        LinkSpec("ib-ndr", 50.0, 5e-6, "InfiniBand NDR 400 Gb/s per NIC"),
        LinkSpec("roce-400g", 50.0, 10e-6, "RoCE v2 400 GbE per NIC"),
        LinkSpec("ethernet-100g", 12.5, 20e-6, "100 GbE TCP"),
    )
}


def get_link(name: str) -> LinkSpec:
    """The link named ``name``; KeyError lists the choices."""
    try:
        return LINKS[name]
    except KeyError:
        raise KeyError(f"unknown link {name!r} (choices: {', '.join(sorted(LINKS))})") from None


def transfer_time_s(num_bytes: float, link: LinkSpec) -> float:
    """Seconds for one transfer alone on ``link``: latency + bytes / bandwidth."""
    return link.latency_s + num_bytes / (link.gbps * 1e9)


def allreduce_time_s(num_bytes: float, num_gpus: int, link_gbps: float, algo: str | AllReduceAlgo = "ring") -> float:
    """Seconds for an all-reduce of ``num_bytes`` per GPU over ``num_gpus`` GPUs.

    Ring-style algorithms move ``2(n-1)/n x bytes`` through each GPU's link; switch
    reduction (NVLink SHARP) moves the buffer once each way. Latency and the fraction of
    ``link_gbps`` reached are fitted per algorithm (``calibration_constants.ALLREDUCE_ALGOS``).
    """
    if num_gpus <= 1:
        return 0.0
    a = ALLREDUCE_ALGOS[algo] if isinstance(algo, str) else algo
    wire = 1.0 if a.switch_reduction else 2.0 * (num_gpus - 1) / num_gpus
    return a.latency_s + wire * num_bytes / (link_gbps * 1e9 * a.bus_efficiency)


def allgather_time_s(num_bytes: float, num_gpus: int, link: LinkSpec) -> float:
    """Seconds for an all-gather (or reduce-scatter) of a ``num_bytes`` result: (n-1)/n x bytes / bw."""
    if num_gpus <= 1:
        return 0.0
    return link.latency_s + (num_gpus - 1) / num_gpus * num_bytes / (link.gbps * 1e9)


class _Transfer:
    __slots__ = ("remaining_bytes", "done", "num_bytes", "start_s", "join_s", "seq", "on_done", "waited", "tol")

    def __init__(self, num_bytes: float, done: Any, start_s: float, join_s: float, seq: int, on_done: Any):
        self.on_done = on_done  # (start_s, end_s, num_bytes) -> None, called as it completes
        self.num_bytes = num_bytes
        self.remaining_bytes = float(num_bytes)
        self.done = done
        self.start_s = start_s  # when it was asked for
        self.join_s = join_s    # when it joins the shared pool (after the link latency)
        self.seq = seq          # order of creation among the link's changes (ties at one instant)
        self.waited = False     # someone registered a callback (a process yielded it)
        self.tol = 1e-9 * num_bytes + 1e-6  # done when this close to empty (or within the clock's ulps)


_INF = float("inf")
_NORMAL = 1  # SimPy's priority of a timeout or a triggered event


class _Waiters(list):
    """A transfer's callbacks: the first one registered (a process yields the event) makes the
    link wake at each of its checks until that transfer is done."""

    __slots__ = ("link", "transfer")

    def append(self, callback: Any) -> None:
        list.append(self, callback)
        t = self.transfer
        if not t.waited:
            self.link._waited_on(t)


class _Done(Event):
    """A transfer's completion event: reading ``triggered`` brings its link up to now."""

    def __init__(self, env: Any, link: SharedLink):
        self.env = env
        self.callbacks = _Waiters()
        self.callbacks.link = link
        self._value = PENDING

    @property
    def triggered(self) -> bool:
        if self._value is PENDING:
            self.callbacks.link.poll()
        return self._value is not PENDING


class SharedLink:
    """A link whose bandwidth is shared equally by the transfers in flight (SimPy).

    ``link.transfer(env, num_bytes)`` returns a SimPy event that succeeds when the bytes are
    through (its value is the transfer's duration in seconds); ``on_done(start_s, end_s,
    num_bytes)``, if given, is called at that instant before anyone waiting resumes. An
    event nobody waits on when it completes is marked processed without being scheduled
    (``triggered`` is true; yielding it later resumes at once). Each transfer first waits the
    link latency, then joins the shared pool. ``gbps`` overrides the spec's bandwidth (e.g. a
    fair share of a superchip's C2C link).

    The pool is a fluid model in closed form. Its changes are joins (a transfer's latency is
    over) and checks (its smallest transfer should have drained at the current share: those
    within rounding of empty are done, and the next check is planned). Between two changes
    each transfer drains at ``bw / n``. A join is known when its transfer is asked for, so it
    is applied then if it comes before the next check (the state is then ahead of the clock;
    ``num_active`` discounts transfers not joined yet), else right after the check it follows.
    Checks cost a SimPy event only while a process waits for one of the transfers in flight
    (one per check; a check moved later by a join leaves its event behind, which then finds
    nothing to do). Otherwise they are applied when the link is next looked at (a transfer
    asked for, ``num_active``, an event's ``triggered``, ``poll``), with their own times: a
    transfer nobody waits on is then marked processed with its exact duration and
    ``on_done`` gets its exact end time. So a process must read ``triggered`` before it waits
    on an older transfer (or yield it when it is made). The arithmetic is that of stepping the
    pool at each change (same operations, same order), so the times are those of a process
    that wakes at every join and check; changes at one instant go in their creation order.
    """

    def __init__(self, spec: LinkSpec, gbps: float | None = None):
        self.spec = spec
        self.bytes_per_s = (spec.gbps if gbps is None else gbps) * 1e9
        self._env: Any = None
        self._active: list[_Transfer] = []
        self._joining: list[_Transfer] = []  # joins after the next check, in order
        self._last_s = 0.0
        self._check_s = _INF    # the pool's next check (inf: nothing in flight)
        self._check_from_s = 0.0  # when that check was planned
        self._check_seq = 0
        self._seq = 0
        self._armed: list[float] = []  # times of this link's pending SimPy events, latest first
        self._num_waited = 0  # transfers in flight that a process waits for
        self.bytes_done = 0.0

    @property
    def num_active(self) -> int:
        """Transfers currently sharing the bandwidth."""
        env = self._env
        if env is None:
            return 0
        now = env._now
        self._sync(now)
        n = len(self._active)
        for t in self._active:
            if t.join_s > now:  # applied ahead of the clock
                n -= 1
        return n

    def poll(self) -> None:
        """Bring the pool up to now: transfers done by now complete (lazily, for those nobody
        waits on; ``on_done`` gets their exact end times)."""
        env = self._env
        if env is not None and self._check_s <= env._now:
            self._sync(env._now)

    def _waited_on(self, t: _Transfer) -> None:
        """A process waits for ``t``: from now on the link wakes at each check until it is done."""
        now = self._env._now
        if self._check_s <= now:
            self._sync(now)
        if t.done._value is not PENDING:
            raise RuntimeError("a process waits for a link transfer that completed before it looked "
                               "(read its event's `triggered` first, or yield it when it is made)")
        t.waited = True
        self._num_waited += 1
        self._arm()

    def transfer(self, env: Any, num_bytes: float, on_done: Any = None) -> Any:
        """Start moving ``num_bytes``; returns an event to ``yield`` on."""
        if env is not self._env:
            if self._env is not None:
                raise ValueError("a SharedLink belongs to one simpy.Environment")
            self._env = env
        now = env._now
        check_s = self._check_s
        if check_s <= now:
            self._sync(now)
            check_s = self._check_s
        seq = self._seq = self._seq + 1
        join_s = now + self.spec.latency_s
        if num_bytes > 0:
            done = _Done(env, self)
            t = done.callbacks.transfer = _Transfer(num_bytes, done, now, join_s, seq, on_done)
            if self._joining or join_s > check_s or (join_s == check_s and not self._before_check(t)):
                self._joining.append(t)  # after the next check, which it does not move
            else:
                self._join(t)
                if self._num_waited:
                    self._arm()
        else:  # nothing to move: done after the latency
            done = Event(env)
            done._ok = True
            done._value = join_s - now
            heappush(env._queue, (join_s, _NORMAL, next(env._eid), done))
            if on_done is not None:
                done.callbacks.append(lambda _e: on_done(now, env._now, num_bytes))
        return done

    # ------------------------------------------------------------------ the fluid model
    def _before_check(self, t: _Transfer) -> bool:
        """Whether ``t`` joins before the next check (at the same instant: the older goes first)."""
        if t.join_s != self._check_s:
            return t.join_s < self._check_s
        return t.start_s < self._check_from_s or (t.start_s == self._check_from_s and t.seq < self._check_seq)

    def _join(self, t: _Transfer) -> None:
        """``t`` joins the pool: the others drain up to its join at the old share, then re-plan
        (the smallest remaining found in the same pass)."""
        now = t.join_s
        active = self._active
        bw = self.bytes_per_s
        least = t.remaining_bytes
        if active:
            moved = (now - self._last_s) * bw / len(active)
            for a in active:
                a.remaining_bytes -= moved
                if a.remaining_bytes < least:
                    least = a.remaining_bytes
        self._last_s = now
        active.append(t)
        self._plan_check(now, least)

    def _sync(self, now: float) -> None:
        """Apply every check due by ``now`` and the joins that follow each."""
        joining = self._joining
        while self._check_s <= now:
            self._check(self._check_s)
            while joining and self._before_check(joining[0]):
                self._join(joining.pop(0))

    def _check(self, now: float) -> None:
        """Drain up to ``now``; transfers within rounding of empty are done; re-plan (the
        smallest remaining of the others found in the same pass)."""
        active = self._active
        bw = self.bytes_per_s
        n = len(active)
        moved = (now - self._last_s) * bw / n
        self._last_s = now
        # done when the rest would drain within a few ulps of the clock: later than that the
        # check could not move time forward and the link would spin at `now`
        slack = 4 * math.ulp(now) * (bw / n)
        if n == 1:  # alone (the common case): the loop below, unrolled
            a = active[0]
            r = a.remaining_bytes = a.remaining_bytes - moved
            if r <= a.tol or r <= slack:
                finished = active
                active = self._active = []
            else:
                finished = None
        else:
            finished = None
            least = _INF
            for a in active:
                a.remaining_bytes -= moved
                r = a.remaining_bytes
                if r <= a.tol or r <= slack:
                    if finished is None:
                        finished = [a]
                    else:
                        finished.append(a)
                elif r < least:
                    least = r
            if finished is not None:
                active = self._active = [a for a in active if a not in finished]
        self._plan_check(now, r if n == 1 else least)
        if finished is None:
            return
        for t in finished:
            if t.waited:
                if now != self._env._now:
                    raise RuntimeError(f"shared link: a waited transfer finished at {now}, seen at {self._env._now}")
                self._num_waited -= 1
            self.bytes_done += t.num_bytes
            if t.on_done is not None:
                t.on_done(t.start_s, now, t.num_bytes)
            done = t.done
            if done.callbacks:
                done.succeed(now - t.start_s)
            else:  # nobody waits: processed as of now, no event
                done._ok = True
                done._value = now - t.start_s
                done.callbacks = None

    def _plan_check(self, now: float, least: float) -> None:
        """Plan the next check, planned at ``now``: when the smallest remaining transfer
        (``least`` bytes) drains at the current share (none while nothing is in flight)."""
        self._seq += 1
        self._check_from_s = now
        self._check_seq = self._seq
        active = self._active
        self._check_s = now + max(0.0, least / (self.bytes_per_s / len(active))) if active else _INF

    def _arm(self) -> None:
        """Make sure a SimPy event wakes the link at its next check (while anyone waits)."""
        check_s, armed = self._check_s, self._armed
        if check_s < _INF and self._num_waited and (not armed or check_s < armed[-1]):
            env = self._env
            event = Event(env)
            event._ok = True
            event._value = None
            event.callbacks.append(self._on_armed)
            heappush(env._queue, (check_s, _NORMAL, next(env._eid), event))
            armed.append(check_s)

    def _on_armed(self, _event: Any) -> None:
        self._armed.pop()
        now = self._env._now
        if self._check_s <= now:
            self._sync(now)
        self._arm()
