"""Where a model's weights live, what moving or streaming them costs, and HybridGEMM's split.

Tiers a replica (a GPU or a MIG slice) can find a model's weights in::

    HBM (resident)       runs at once (a switch costs switch_overhead_s)
    host tier            Grace LPDDR5X behind NVLink-C2C on a superchip (346 GB/s measured),
                         pinned host DRAM behind PCIe elsewhere: loaded, or streamed (C2CServe)
    storage              local NVMe (safetensors 3.65 GB/s; ServerlessLLM's loader 22.9 GB/s)
    remote               network download (5 GB/s)

The host link and the storage path belong to the *chip* (node): every MIG slice of one GH200
shares its one C2C link, so concurrent loads and weight streams split its bandwidth equally
(``hardware.links.SharedLink``). Bandwidths per source are ``hardware.cold_start.SOURCES``.

HybridGEMM (C2CServe): a knob ``rho`` sends that share of each GEMM's weight reads over the
C2C link and the rest to HBM, so an iteration takes about::

    T ~ max(rho W / BW_c2c_share, (1 - rho) W / BW_hbm_slice) + compute

with ``W`` the weight bytes the iteration reads (all dense weights, the experts its tokens
touch). ``balanced_rho`` is the split where both legs take equal time.
"""

from __future__ import annotations

from hardware.cold_start import SOURCES, host_link_gbps
from hardware.devices import DeviceSpec
from hardware.links import LINKS, LinkSpec
from hardware.models import ModelSpec, dtype_bytes

HOST_TIERS = ("grace", "host_memory")


def host_link_spec(device: DeviceSpec) -> LinkSpec:
    """The link between a chip's host tier and its GPU: NVLink-C2C on superchips (measured
    346 GB/s), else the device's measured host link (PCIe)."""
    if device.is_superchip:
        return LINKS["nvlink-c2c"]
    gbps = float(device.host_link_measured_gbps or LINKS["pcie5"].gbps)
    return LinkSpec(f"host-{device.name}", gbps, LINKS["pcie5"].latency_s, "pinned host memory over PCIe")


def source_link_spec(source: str, device: DeviceSpec, load_gbps: float | None = None) -> LinkSpec:
    """The link weights are loaded over from ``source`` (a ``weights_home``)."""
    if load_gbps is not None:
        return LinkSpec(f"{source}-custom", float(load_gbps), 0.0, "configured load bandwidth")
    if source in HOST_TIERS:
        return host_link_spec(device)
    gbps = SOURCES[source].gbps
    if gbps is None:
        gbps = host_link_gbps(None)
    return LinkSpec(f"load-{source}", float(gbps), 0.0, SOURCES[source].notes)


def slices_per_chip(device: DeviceSpec) -> int:
    """MIG instances of this profile on one chip (a whole GPU: 1): 7 for 1g, 3 for 2g, 2 for 3g."""
    if not device.is_mig_slice:
        return 1
    compute = int(str(device.profile).split("g", 1)[0])
    by_compute = 7 // compute
    by_memory = 8 // int(device.memory_slices)
    return max(1, min(by_compute, by_memory))


def weight_bytes_read(model: ModelSpec, dtype: str, num_tokens: int) -> float:
    """Weight bytes one iteration of ``num_tokens`` tokens reads: every dense weight once, the
    experts those tokens touch, and the LM head."""
    wb = dtype_bytes(dtype)
    touched = model.touched_experts(num_tokens) if model.is_moe else None
    total = model.num_mlp_dense_layers * model.layer_weight_bytes(dtype)
    if model.num_moe_layers:
        total += model.num_moe_layers * model.layer_weight_bytes(dtype, moe_layer=True, touched_experts=touched)
    return total + model.lm_head_params * wb


def balanced_rho(c2c_share_gbps: float, hbm_gbps: float) -> float:
    """rho with rho W / c2c = (1 - rho) W / hbm: the split that equalises the two legs."""
    if c2c_share_gbps <= 0:
        return 0.0
    return c2c_share_gbps / (c2c_share_gbps + hbm_gbps)


def hybrid_weight_time_s(weight_bytes: float, rho: float, c2c_share_gbps: float, hbm_gbps: float) -> float:
    """max(rho W / BW_c2c_share, (1 - rho) W / BW_hbm): the weight-read leg of one iteration."""
    c2c = rho * weight_bytes / (c2c_share_gbps * 1e9) if rho > 0 else 0.0
    hbm = (1.0 - rho) * weight_bytes / (hbm_gbps * 1e9)
    return max(c2c, hbm)

