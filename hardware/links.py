"""Interconnects: link specs, transfer and collective times, and a fair-shared SimPy link.

A lone transfer of ``n`` bytes takes ``latency + n / bandwidth``. On a ``SharedLink``
concurrent transfers split the bandwidth equally (processor sharing), the rate of each being
recomputed whenever one starts or ends::

    rate per transfer
      bw |#####A#####|
    bw/2 |           |##A##|##B##|      B starts: A and B share; A ends: B gets it all
         +-----------+-----+-----+-----> t
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
    __slots__ = ("remaining_bytes", "done", "num_bytes")

    def __init__(self, num_bytes: float, done: Any):
        self.num_bytes = num_bytes
        self.remaining_bytes = float(num_bytes)
        self.done = done


class SharedLink:
    """A link whose bandwidth is shared equally by the transfers in flight (SimPy).

    ``link.transfer(env, num_bytes)`` returns a SimPy process that ends when the bytes are
    through (its value is the transfer's duration in seconds). Each transfer first waits the
    link latency, then joins the shared pool. ``gbps`` overrides the spec's bandwidth (e.g. a
    fair share of a superchip's C2C link).
    """

    def __init__(self, spec: LinkSpec, gbps: float | None = None):
        self.spec = spec
        self.bytes_per_s = (spec.gbps if gbps is None else gbps) * 1e9
        self._env: Any = None
        self._active: list[_Transfer] = []
        self._last_s = 0.0
        self._generation = 0  # invalidates wake-ups scheduled before the last change
        self.bytes_done = 0.0

    @property
    def num_active(self) -> int:
        """Transfers currently sharing the bandwidth."""
        return len(self._active)

    def transfer(self, env: Any, num_bytes: float) -> Any:
        """Start moving ``num_bytes``; returns a process to ``yield`` on."""
        if self._env is None:
            self._env = env
        elif env is not self._env:
            raise ValueError("a SharedLink belongs to one simpy.Environment")
        return env.process(self._run(env, num_bytes))

    def _run(self, env: Any, num_bytes: float):
        start = env.now
        yield env.timeout(self.spec.latency_s)
        if num_bytes > 0:
            t = _Transfer(num_bytes, env.event())
            self._advance()
            self._active.append(t)
            self._reschedule()
            yield t.done
        return env.now - start

    def _advance(self) -> None:
        """Drain bytes for the time since the last change at the then-current shares."""
        now = self._env.now
        if self._active:
            moved = (now - self._last_s) * self.bytes_per_s / len(self._active)
            for t in self._active:
                t.remaining_bytes -= moved
        self._last_s = now

    def _reschedule(self) -> None:
        self._generation += 1
        if not self._active:
            return
        rate = self.bytes_per_s / len(self._active)
        delay = max(0.0, min(t.remaining_bytes for t in self._active) / rate)
        generation = self._generation
        wake = self._env.timeout(delay)
        wake.callbacks.append(lambda _event: self._on_wake(generation))

    def _on_wake(self, generation: int) -> None:
        if generation != self._generation:
            return  # a transfer started or ended since; a newer wake-up is pending
        self._advance()
        # done when the rest would drain within a few ulps of the clock: later than that the
        # wake-up could not move time forward and the link would spin at `now`
        rate = self.bytes_per_s / len(self._active) if self._active else 0.0
        slack = 4 * math.ulp(self._env.now) * rate
        finished = [t for t in self._active if t.remaining_bytes <= max(1e-9 * t.num_bytes + 1e-6, slack)]
        self._active = [t for t in self._active if t not in finished]
        for t in finished:
            self.bytes_done += t.num_bytes
            t.done.succeed()
        self._reschedule()
