"""The GPU catalog: peak throughput, memory, links, power and price of each device.

Figures come from HARDWARE.md section 1 (vendor datasheets; dense TFLOPS, GB/s = 1e9
bytes/s). ``get_device("H100-SXM")`` returns a frozen ``DeviceSpec``;
``get_device("H100-SXM:3g.40gb")`` returns a MIG slice (see ``hardware.mig``).
``load_device_file(path)`` adds or overrides entries from a user YAML file::

    devices:
      H100-cheap:            # a new name ...
        base: H100-SXM       # ... copying every figure of an existing entry
        price_per_gpu_hour: 1.99
        aliases: [h100-spot]
      My-Accelerator:        # or a new device given in full
        bf16_tflops: 400
        memory_gib: 64
        hbm_gbps: 2000
        ...

Memory sizes: vendors' "80 GB" of HBM is 80 GiB of DRAM of which the driver shows a little
less; the catalog stores the GiB figure and lets ``gpu_memory_utilization`` absorb the rest.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ConfigError

GIB = 1 << 30

#: Splitwise's measured per-phase power as fractions of TDP (H100: 700 W prompt, 380 W token,
#: 75 W idle). Devices without a measurement scale their TDP by these ratios (uncertain).
DECODE_POWER_FRACTION = 380.0 / 700.0
IDLE_POWER_FRACTION = 75.0 / 700.0


@dataclass(frozen=True)
class DeviceSpec:
    """One GPU (or one MIG slice of a GPU) as the cost models see it."""

    name: str
    arch: str  # ampere | hopper | blackwell | ada | cdna3; keys the calibration constants
    bf16_tflops: float
    fp8_tflops: float  # 0 where the device has no FP8 tensor cores
    int8_tops: float
    memory_bytes: int
    hbm_gbps: float
    num_sms: int
    l2_bytes: int
    nvlink_gbps: float  # per direction; 0 where there is no NVLink (TP then runs over PCIe)
    host_link: str  # a name in hardware.links.LINKS
    host_link_gbps: float  # nominal per direction
    host_link_measured_gbps: float  # what a copy engine reaches host->device
    tdp_w: float
    prefill_power_w: float
    decode_power_w: float
    idle_power_w: float
    price_per_gpu_hour: float  # USD; a snapshot, override it for your provider
    # superchip (GH200 / GB200) Grace memory tier behind NVLink-C2C; 0 elsewhere
    grace_memory_bytes: int = 0
    c2c_gbps: float = 0.0
    c2c_measured_gbps: float = 0.0
    # MIG: the table of profiles this GPU accepts, and for a slice its parent and share
    mig_table: str = ""
    parent: str = ""
    profile: str = ""
    memory_slices: int = 8
    parent_sms: int = 0
    # GPUs one NVLink (or Infinity Fabric / PCIe) domain of a node holds: the most a replica's
    # tp x pp may use, since every cost model prices TP and PP over the intra-node link
    gpus_per_node: int = 8
    # whether a PCIe-only node's GPUs reach each other's memory directly (CUDA peer access); False: NCCL
    # stages every transfer through host shared memory (``pcie_shm`` all-reduce instead of ``pcie_ring``)
    gpu_p2p: bool = True
    notes: str = ""

    @property
    def is_mig_slice(self) -> bool:
        """True for a MIG instance rather than a whole GPU."""
        return bool(self.profile)

    @property
    def is_superchip(self) -> bool:
        """True when a Grace memory tier sits behind NVLink-C2C."""
        return self.grace_memory_bytes > 0

    def peak_flops(self, dtype: str) -> float:
        """Dense tensor-core FLOPS for GEMMs whose weights are ``dtype``.

        FP8 and INT8 use their own peak (W8A8) where the device has it; int4 and FP8 on
        devices without FP8 units are weight-only formats computed in BF16.
        """
        if dtype == "fp8" and self.fp8_tflops > 0:
            return self.fp8_tflops * 1e12
        if dtype == "int8" and self.int8_tops > 0:
            return self.int8_tops * 1e12
        return self.bf16_tflops * 1e12

    def phase_power_w(self, phase: str) -> float:
        """Average power in 'prefill', 'decode' or 'idle'; KeyError-free (0 for others)."""
        return {"prefill": self.prefill_power_w, "decode": self.decode_power_w,
                "idle": self.idle_power_w}.get(phase, 0.0)


def _gpu(name: str, arch: str, bf16: float, fp8: float, mem_gib: float, hbm: float, sms: int, l2_mb: float,
         nvlink: float, host: str, host_gbps: float, host_measured: float, tdp: float, price: float,
         power: tuple[float, float, float] | None = None, **extra: Any) -> DeviceSpec:
    """A catalog entry; INT8 defaults to FP8's rate (or 2x BF16 on FP8-less parts, uncertain)."""
    prefill_w, decode_w, idle_w = power or (tdp, tdp * DECODE_POWER_FRACTION, tdp * IDLE_POWER_FRACTION)
    int8 = extra.pop("int8", fp8 if fp8 > 0 else 2 * bf16)
    return DeviceSpec(
        name=name, arch=arch, bf16_tflops=bf16, fp8_tflops=fp8, int8_tops=int8,
        memory_bytes=int(mem_gib * GIB), hbm_gbps=hbm, num_sms=sms, l2_bytes=int(l2_mb * 1e6),
        nvlink_gbps=nvlink, host_link=host, host_link_gbps=host_gbps, host_link_measured_gbps=host_measured,
        tdp_w=tdp, prefill_power_w=prefill_w, decode_power_w=decode_w, idle_power_w=idle_w,
        price_per_gpu_hour=price, **extra,
    )


# Splitwise's measured phase power; other devices are scaled from their TDP.
_A100_POWER = (400.0, 250.0, 63.0)
_H100_POWER = (700.0, 380.0, 75.0)
# PCIe host links: H100 on PCIe5 measured ~35 GB/s host->GPU (53 GPU->host); PCIe4 parts
# assume the same ~55% of nominal (uncertain).
_PCIE4_MEASURED = 32.0 * 35.0 / 64.0

# Memory (mem_gib) is the CUDA-visible total (torch.cuda.mem_get_info, what vLLM multiplies by
# gpu_memory_utilization), not the nameplate, where a public log prints it: A10G 22.06, L4 22.03,
# L40S 44.31, A100-80GB 79.15, A100-40GB 39.38, H100 80GB 79.18, H200 139.80 GiB
# (hardware/corpus/kv_capacity_logs.md lists the logs). Other parts keep their nominal size.
# Prices (USD per GPU-hour): H100 4.25 and A100 2.21 are one Feb-2024 snapshot; every other
# price is a placeholder inside the ranges HARDWARE.md quotes. Override them.
_CATALOG: dict[str, DeviceSpec] = {
    d.name: d
    for d in (
        _gpu("A100-40GB", "ampere", 312, 0, 39.38, 1555, 108, 40, 300, "pcie4", 32, _PCIE4_MEASURED, 400, 2.21,
             _A100_POWER, mig_table="A100-40GB", notes="MIG table derived from the 80GB part (uncertain)"),
        _gpu("A100-80GB", "ampere", 312, 0, 79.15, 2039, 108, 40, 300, "pcie4", 32, _PCIE4_MEASURED, 400, 2.21,
             _A100_POWER, mig_table="A100-80GB"),
        _gpu("H100-SXM", "hopper", 989, 1979, 79.18, 3350, 132, 50, 450, "pcie5", 64, 35, 700, 4.25,
             _H100_POWER, mig_table="H100-80GB"),
        _gpu("H100-PCIe", "hopper", 756, 1513, 80, 2000, 114, 50, 0, "pcie5", 64, 35, 350, 3.00,
             mig_table="H100-80GB", notes="SM count uncertain; NVLink bridge pairs not modelled"),
        _gpu("H200", "hopper", 989, 1979, 139.80, 4800, 132, 50, 450, "pcie5", 64, 35, 700, 3.50,
             _H100_POWER, mig_table="H200", notes="L2 size uncertain"),
        _gpu("GH200-96GB", "hopper", 989, 1979, 96, 4000, 132, 50, 450, "nvlink-c2c", 450, 346, 1000, 3.50,
             grace_memory_bytes=480 * 10**9, c2c_gbps=450, c2c_measured_gbps=346, mig_table="GH200-96GB",
             gpus_per_node=1, notes="one superchip per node (NVL32 racks: a device file with gpus_per_node: 32); "
             "TDP is the 450-1000 W module budget; Grace LPDDR5X 120/240/480 GB, 480 assumed"),
        _gpu("GH200-144GB", "hopper", 989, 1979, 144, 4900, 132, 50, 450, "nvlink-c2c", 450, 346, 1000, 4.00,
             grace_memory_bytes=480 * 10**9, c2c_gbps=450, c2c_measured_gbps=346, gpus_per_node=1,
             notes="one superchip per node; no MIG table (slice sizes unpublished here)"),
        _gpu("B200", "blackwell", 2250, 4500, 180, 7700, 148, 126, 900, "pcie6", 128, 70, 1000, 5.00,
             notes="L2 ~126 MB uncertain; PCIe6 measured rate assumed 55% of nominal"),
        _gpu("GB200", "blackwell", 2500, 5000, 186, 8000, 148, 126, 900, "nvlink-c2c", 450, 346, 1200, 6.00,
             grace_memory_bytes=240 * 10**9, c2c_gbps=450, c2c_measured_gbps=346, gpus_per_node=72,
             notes="NVL72: 72 GPUs in one NVLink domain; two GPUs share one Grace (480 GB, half each); "
             "SMs and C2C share uncertain"),
        _gpu("L40S", "ada", 362, 733, 44.31, 864, 142, 96, 0, "pcie4", 32, _PCIE4_MEASURED, 350, 1.50),
        _gpu("L4", "ada", 121, 242, 22.03, 300, 58, 48, 0, "pcie4", 32, _PCIE4_MEASURED, 72, 0.80),
        _gpu("A10G", "ampere", 70, 0, 22.06, 600, 80, 6, 0, "pcie4", 32, _PCIE4_MEASURED, 300, 1.00,
             gpu_p2p=False,
             notes="BF16 ~70 TFLOPS and TDP (150-300 W) uncertain; multi-GPU hosts (AWS G5) have no GPU "
             "peer-to-peer (ray-project/ray#39471, NVIDIA/TensorRT-LLM#1034 and #1487), so TP all-reduces "
             "go through host memory (SOURCES.md fid11)"),
        _gpu("MI300X", "cdna3", 1307, 2615, 192, 5300, 304, 256, 448, "pcie5", 64, 35, 750, 3.00,
             notes="304 CUs in num_sms; Infinity Fabric ~896 GB/s aggregate, half per direction (uncertain)"),
    )
}

_ALIASES: dict[str, str] = {
    "a100": "A100-80GB", "a100-sxm4-80gb": "A100-80GB", "a100-80gb-sxm": "A100-80GB",
    "a100-sxm4-40gb": "A100-40GB", "a100-40gb-sxm": "A100-40GB",
    "h100": "H100-SXM", "h100-sxm5": "H100-SXM", "h100-80gb": "H100-SXM", "h100-sxm-80gb": "H100-SXM",
    "h100-pcie-80gb": "H100-PCIe", "h200-sxm": "H200", "h200-141gb": "H200",
    "gh200": "GH200-96GB", "gh200-480gb": "GH200-96GB", "gb200-nvl72": "GB200",
    "l40s-48gb": "L40S", "mi300": "MI300X",
}


def _key(name: str) -> str:
    return name.strip().lower()


def device_names() -> list[str]:
    """Canonical names of every whole-GPU catalog entry, sorted."""
    return sorted(_CATALOG)


def resolve_name(name: str, where: str = "") -> str:
    """The canonical catalog name for ``name`` or an alias (case-insensitive)."""
    k = _key(name)
    for canonical in _CATALOG:
        if _key(canonical) == k:
            return canonical
    if k in _ALIASES:
        return _ALIASES[k]
    choices = list(_CATALOG) + list(_ALIASES)
    close = difflib.get_close_matches(name, choices, n=1) or difflib.get_close_matches(k, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown device {name!r}{hint} (choices: {', '.join(device_names())})", where)


def get_device(name: str, where: str = "") -> DeviceSpec:
    """The device named ``name``: a catalog GPU, an alias, or ``GPU:profile`` for a MIG slice."""
    if ":" in name:
        from hardware.mig import slice_device  # mig builds on this module

        gpu, _, profile = name.partition(":")
        return slice_device(get_device(gpu, where), profile.strip(), where)
    return _CATALOG[resolve_name(name, where)]


_FIELDS = {f.name: f for f in dataclasses.fields(DeviceSpec)}
_FILE_ONLY = {"base", "aliases", "memory_gib", "l2_mb"}


def _device_from_mapping(name: str, data: dict, file: str, where: str) -> DeviceSpec:
    """Build one entry of a user device file, optionally copying ``base``."""
    unknown = [k for k in data if k not in _FIELDS and k not in _FILE_ONLY]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(_FIELDS) + list(_FILE_ONLY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown device field {unknown[0]!r}{hint}", f"{where}.{unknown[0]}", file)
    values: dict[str, Any] = {}
    if "base" in data:
        try:
            values = dataclasses.asdict(get_device(str(data["base"])))
        except ConfigError as exc:
            raise ConfigError(exc.message, f"{where}.base", file) from None
        values["mig_table"] = values["mig_table"] if "mig_table" not in data else data["mig_table"]
    if "memory_gib" in data:
        values["memory_bytes"] = int(float(data["memory_gib"]) * GIB)
    if "l2_mb" in data:
        values["l2_bytes"] = int(float(data["l2_mb"]) * 1e6)
    for key, value in data.items():
        if key in _FIELDS:
            field_type = str(_FIELDS[key].type)
            if field_type in ("float", "int") and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"expected a number, got {value!r}", f"{where}.{key}", file)
            if field_type == "str" and not isinstance(value, str):
                raise ConfigError(f"expected a string, got {value!r}", f"{where}.{key}", file)
            values[key] = int(value) if field_type == "int" else value
    values["name"] = name
    values.setdefault("arch", "unknown")
    tdp = values.get("tdp_w")
    if tdp is not None:
        values.setdefault("prefill_power_w", float(tdp))
        values.setdefault("decode_power_w", float(tdp) * DECODE_POWER_FRACTION)
        values.setdefault("idle_power_w", float(tdp) * IDLE_POWER_FRACTION)
    defaults = {"fp8_tflops": 0.0, "int8_tops": 2 * float(values.get("bf16_tflops", 0.0)), "l2_bytes": 0,
                "nvlink_gbps": 0.0, "host_link": "pcie4", "host_link_gbps": 32.0, "num_sms": 1,
                "tdp_w": 0.0, "prefill_power_w": 0.0, "decode_power_w": 0.0, "idle_power_w": 0.0,
                "price_per_gpu_hour": 0.0}
    for key, value in defaults.items():
        values.setdefault(key, value)
    values.setdefault("host_link_measured_gbps", values["host_link_gbps"])
    missing = [k for k in ("bf16_tflops", "memory_bytes", "hbm_gbps") if k not in values]
    if missing:
        key = "memory_gib" if missing[0] == "memory_bytes" else missing[0]
        raise ConfigError("required field is missing (or give 'base: <catalog GPU>')", f"{where}.{key}", file)
    return DeviceSpec(**values)


def load_device_file(path: str | Path) -> list[str]:
    """Add (or replace) catalog entries from a YAML file; returns the names it defined.

    The file is a mapping ``name -> fields`` either at top level or under ``devices:``.
    Errors name the file and the key at fault.
    """
    import yaml  # imported here: the built-in catalog needs no YAML

    file = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read device file: {exc.strerror}", file=file) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax error: {exc}", file=file) from None
    prefix = ""
    if isinstance(data, dict) and "devices" in data:
        data, prefix = data["devices"], "devices."
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of device name -> fields", prefix.rstrip("."), file)
    built = []
    for name, fields in data.items():
        where = f"{prefix}{name}"
        if not isinstance(fields, dict):
            raise ConfigError(f"expected a mapping of fields, got {fields!r}", where, file)
        built.append((str(name), _device_from_mapping(str(name), fields, file, where), fields.get("aliases", [])))
    for name, spec, aliases in built:  # all entries validated before any is added
        _CATALOG[name] = spec
        for alias in aliases:
            _ALIASES[_key(str(alias))] = name
    return [name for name, _spec, _aliases in built]
