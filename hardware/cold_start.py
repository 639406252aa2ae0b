"""Cold start of a replica added at run time: weight load plus engine start-up.

::

    cold start = weight bytes per GPU / load bandwidth per GPU + engine start
                 |                      |                       |
                 cost model             the pool's cold_start   the pool's cold_start
                 (weight_bytes_per_gpu) source (or load_gbps)   engine_start_s

Every GPU of a replica loads its own shard over its own path at once, so the replica is
ready when one shard is in. Load bandwidths per source (GB/s = 1e9 bytes/s per GPU), with
the measurement each comes from (Llama-3.1-8B, 16.06 GB in bf16, on H100 GPUs):

- ``storage``: local NVMe SSD read by the stock safetensors loader. ServerlessLLM Store's
  benchmark (github.com/ServerlessLLM/ServerlessLLM, sllm_store README) loads
  Llama-3.1-8B-Instruct with safetensors in 4.4 s on H100 + NVMe: 16.06 / 4.4 = 3.65.
- ``storage_fast``: the same NVMe with a loading-optimised format and pipelined loader
  (ServerlessLLM, OSDI'24): 0.7 s in the same benchmark, 16.06 / 0.7 = 22.9.
- ``host_memory``: a checkpoint pinned in host DRAM, copied over the device's host link at
  its measured host->GPU rate (``hardware.devices``: 35 on an H100 SXM's PCIe5).
- ``remote``: downloaded over the network: 5, the example ServerlessLLM's introduction uses
  (a 130 GB checkpoint in about 26 s).
- ``custom``: ``load_gbps`` as given.

Engine start (default 14.2 s): vLLM's "init engine (profile, create kv cache, warmup model)"
for Meta-Llama-3-8B, logged in vllm-project/vllm PR #11005 (14.18 s; 39.3 s with
torch.compile -O3, about 34 s with a warm compile cache on a small Llama in issue #20264).
Process launch and imports come on top and are left to ``engine_start_s``.

Cold starts of Llama-3-8B on one H100 SXM with these defaults: host_memory 0.46 + 14.2 =
14.7 s; storage_fast 0.70 + 14.2 = 14.9 s; remote 3.21 + 14.2 = 17.4 s; storage 4.40 +
14.2 = 18.6 s (tests/test_lifecycle.py checks these).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hardware.links import LINKS

LLAMA3_8B_BF16_BYTES = 16.06e9  # 8.03e9 parameters x 2 bytes: the constant cost model's default


@dataclass(frozen=True)
class LoadSource:
    """Where weights come from at start-up: a bandwidth per GPU (None: the device's host link)."""

    name: str
    gbps: float | None
    notes: str


SOURCES: dict[str, LoadSource] = {
    s.name: s
    for s in (
        LoadSource("storage", 16.06 / 4.4, "local NVMe, safetensors (ServerlessLLM Store benchmark, H100)"),
        LoadSource("storage_fast", 16.06 / 0.7, "local NVMe, loading-optimised format (ServerlessLLM Store)"),
        LoadSource("host_memory", None, "pinned host DRAM over the device's host link (measured rate)"),
        LoadSource("remote", 5.0, "network download (ServerlessLLM's example: 130 GB in ~26 s)"),
        LoadSource("custom", None, "load_gbps as configured"),
    )
}


@dataclass(frozen=True)
class ColdStart:
    """The start-up of one replica: bytes each GPU loads, at what rate, and the engine's part."""

    weight_bytes_per_gpu: float
    load_gbps: float
    engine_start_s: float

    @property
    def load_s(self) -> float:
        """Seconds to load one GPU's weights."""
        return self.weight_bytes_per_gpu / (self.load_gbps * 1e9)

    @property
    def total_s(self) -> float:
        """Seconds from being added to serving."""
        return self.load_s + self.engine_start_s


def host_link_gbps(cost_model: Any, hardware: Any = None) -> float:
    """The measured host->GPU rate of the replica's device (PCIe5's 35 GB/s if unknown)."""
    device = getattr(cost_model, "device", None)
    if device is None and hardware is not None:
        from hardware.devices import get_device

        try:
            device = get_device(hardware.device)
        except Exception:  # a custom or unknown device: fall back to PCIe5
            device = None
    if device is not None and getattr(device, "host_link_measured_gbps", None):
        return float(device.host_link_measured_gbps)
    return LINKS["pcie5"].gbps


def load_gbps(cfg: Any, cost_model: Any, hardware: Any = None) -> float:
    """Load bandwidth per GPU for a pool's ``cold_start`` block (``load_gbps`` overrides the source)."""
    if cfg.load_gbps is not None:
        return float(cfg.load_gbps)
    source = SOURCES[cfg.source]
    if source.gbps is not None:
        return source.gbps
    return host_link_gbps(cost_model, hardware)


def cold_start(cfg: Any, cost_model: Any, hardware: Any = None) -> ColdStart:
    """The cold start of one replica of a pool: ``cfg`` its ``cold_start`` block, the pool's cost
    model (its ``weight_bytes_per_gpu``; 0 if it has none) and hardware config."""
    weight_bytes = float(getattr(cost_model, "weight_bytes_per_gpu", 0.0) or 0.0)
    return ColdStart(weight_bytes, load_gbps(cfg, cost_model, hardware), float(cfg.engine_start_s))
