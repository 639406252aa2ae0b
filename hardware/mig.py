"""MIG slices: per-profile SMs and memory, slice specs, and whole-GPU layout validation.

A memory slice is 1/8 of the GPU's memory and bandwidth (with its controllers and L2), so a
slice gets ``HBM x memory_slices / 8`` of bandwidth and ``peak x slice_SMs / total_SMs`` of
compute (HARDWARE.md section 2). Placement rules (start = first of 8 memory slices)::

    memory slice:   0   1   2   3   4   5   6   7
    7g              [===============================]
    4g              [===============]
    3g              [===============]   [===============]     starts 0, 4
    2g              [=======]   [=======]   [=======]         starts 0, 2, 4
    1g (2 slices)   [=======]   [=======]   [=======]   [=======]
    1g              [=] [=] [=] [=] [=] [=] [=]               starts 0-6

A layout must also fit the 7 compute slices (1g=1, 2g=2, 3g=3, 4g=4, 7g=7).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from dataclasses import dataclass

from hardware.devices import GIB, DeviceSpec
from sim.errors import ConfigError

COMPUTE_SLICES = 7


@dataclass(frozen=True)
class MigProfile:
    """One MIG instance profile of one GPU model."""

    name: str  # e.g. "3g.40gb"
    num_sms: int
    usable_gib: float
    memory_slices: int
    compute_slices: int
    starts: tuple[int, ...]
    uncertain: bool = False


def _profiles(*rows: tuple) -> dict[str, MigProfile]:
    out = {}
    for name, sms, gib, mem_slices, *flag in rows:
        compute = int(name.split("g", 1)[0])
        if compute == 1 and mem_slices == 2:
            starts = (0, 2, 4, 6)
        else:
            starts = {1: tuple(range(7)), 2: (0, 2, 4), 3: (0, 4), 4: (0,), 7: (0,)}[compute]
        out[name] = MigProfile(name, sms, gib, mem_slices, compute, starts, bool(flag and flag[0]))
    return out


# Real sizes from nvidia-smi (HARDWARE.md section 2); rows marked True are estimates.
MIG_TABLES: dict[str, dict[str, MigProfile]] = {
    "H100-80GB": _profiles(
        ("1g.10gb", 16, 9.75, 1), ("1g.20gb", 26, 19.62, 2), ("2g.20gb", 32, 19.62, 2),
        ("3g.40gb", 60, 39.50, 4), ("4g.40gb", 64, 39.50, 4), ("7g.80gb", 132, 79.25, 8),
    ),
    "GH200-96GB": _profiles(
        ("1g.12gb", 16, 11.00, 1), ("1g.24gb", 26, 23.00, 2), ("2g.24gb", 32, 23.00, 2),
        ("3g.48gb", 60, 46.50, 4), ("4g.48gb", 64, 46.50, 4), ("7g.96gb", 132, 93.00, 8),
    ),
    "H200": _profiles(
        ("1g.18gb", 16, 16.00, 1), ("1g.35gb", 26, 32.50, 2, True), ("2g.35gb", 32, 32.50, 2),
        ("3g.71gb", 60, 65.25, 4, True), ("4g.71gb", 64, 65.25, 4, True), ("7g.141gb", 132, 140.00, 8),
    ),
    "A100-80GB": _profiles(
        ("1g.10gb", 14, 9.50, 1), ("1g.20gb", 14, 19.50, 2), ("2g.20gb", 28, 19.50, 2),
        ("3g.40gb", 42, 39.25, 4), ("4g.40gb", 56, 39.25, 4), ("7g.80gb", 98, 79.25, 8, True),
    ),
    # Halved from the 80GB part; memory figures are estimates.
    "A100-40GB": _profiles(
        ("1g.5gb", 14, 4.75, 1, True), ("1g.10gb", 14, 9.75, 2, True), ("2g.10gb", 28, 9.75, 2, True),
        ("3g.20gb", 42, 19.62, 4, True), ("4g.20gb", 56, 19.62, 4, True), ("7g.40gb", 98, 39.50, 8, True),
    ),
}


def mig_table(device: DeviceSpec, where: str = "") -> dict[str, MigProfile]:
    """The profile table of a whole GPU; ConfigError if it has no MIG support in the catalog."""
    if device.is_mig_slice:
        raise ConfigError(f"{device.name} is already a MIG slice", where)
    table = MIG_TABLES.get(device.mig_table)
    if table is None:
        raise ConfigError(f"device {device.name!r} has no MIG profiles in the catalog "
                          f"(MIG GPUs: {', '.join(sorted(MIG_TABLES))})", where)
    return table


def get_profile(device: DeviceSpec, profile: str, where: str = "") -> MigProfile:
    """The profile ``profile`` ('3g.40gb', or just '3g' when unambiguous) of ``device``."""
    table = mig_table(device, where)
    if profile in table:
        return table[profile]
    short = [p for p in table.values() if p.name.split(".")[0] == profile]
    if short:  # '1g' means the single-memory-slice 1g profile
        return min(short, key=lambda p: p.memory_slices)
    close = difflib.get_close_matches(profile, table, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown MIG profile {profile!r} for {device.name}{hint} "
                      f"(profiles: {', '.join(table)})", where)


def slice_device(device: DeviceSpec, profile: str, where: str = "") -> DeviceSpec:
    """A ``DeviceSpec`` for one MIG instance of ``device``.

    Compute (every precision) scales by SMs / total SMs, HBM bandwidth by memory slices / 8,
    memory is the instance's usable size, L2 follows the memory slices. Power and price are
    the GPU's times the memory-slice share (an allocation convention, not a measurement).
    The Grace tier and C2C link of a superchip stay whole: every slice shares them.
    """
    p = get_profile(device, profile, where)
    compute = p.num_sms / device.num_sms
    share = p.memory_slices / 8
    return dataclasses.replace(
        device,
        name=f"{device.name}:{p.name}",
        bf16_tflops=device.bf16_tflops * compute,
        fp8_tflops=device.fp8_tflops * compute,
        int8_tops=device.int8_tops * compute,
        memory_bytes=int(p.usable_gib * GIB),
        hbm_gbps=device.hbm_gbps * share,
        num_sms=p.num_sms,
        l2_bytes=int(device.l2_bytes * share),
        nvlink_gbps=0.0,  # MIG instances have no peer-to-peer NVLink
        tdp_w=device.tdp_w * share,
        prefill_power_w=device.prefill_power_w * share,
        decode_power_w=device.decode_power_w * share,
        idle_power_w=device.idle_power_w * share,
        price_per_gpu_hour=device.price_per_gpu_hour * share,
        parent=device.name,
        profile=p.name,
        memory_slices=p.memory_slices,
        parent_sms=device.num_sms,
    )


def _place(profiles: list[MigProfile], used: int) -> bool:
    """Backtracking: can ``profiles`` be placed on the free memory slices (bitmask ``used``)?"""
    if not profiles:
        return True
    first, rest = profiles[0], profiles[1:]
    for start in first.starts:
        mask = ((1 << first.memory_slices) - 1) << start
        if start + first.memory_slices <= 8 and not used & mask and _place(rest, used | mask):
            return True
    return False


def layout_fits(table: dict[str, MigProfile], profiles: list[MigProfile]) -> bool:
    """True if the instances fit the 7 compute slices and some placement of memory slices."""
    if sum(p.compute_slices for p in profiles) > COMPUTE_SLICES:
        return False
    # place the biggest first: fewer starts, faster search
    return _place(sorted(profiles, key=lambda p: (-p.memory_slices, len(p.starts))), 0)


def valid_layouts(device: DeviceSpec) -> list[list[str]]:
    """Every maximal layout (nothing more can be added) of ``device``, biggest profiles first."""
    table = mig_table(device)
    names = sorted(table, key=lambda n: (-table[n].compute_slices, -table[n].memory_slices, n))
    found: set[tuple[str, ...]] = set()
    for count in range(1, 8):
        for combo in itertools.combinations_with_replacement(names, count):
            if layout_fits(table, [table[n] for n in combo]):
                found.add(combo)
    maximal = [c for c in found
               if not any(layout_fits(table, [table[n] for n in c + (extra,)]) for extra in names)]
    return [list(c) for c in sorted(maximal, key=lambda c: (len(c), c))]


def validate_layout(device: DeviceSpec | str, profiles: list[str], where: str = "") -> list[MigProfile]:
    """Check that ``profiles`` can coexist on one ``device``; ConfigError lists valid layouts."""
    if isinstance(device, str):
        from hardware.devices import get_device

        device = get_device(device, where)
    table = mig_table(device, where)
    resolved = [get_profile(device, name, where) for name in profiles]
    if not layout_fits(table, resolved):
        layouts = "; ".join(" + ".join(layout) for layout in valid_layouts(device))
        raise ConfigError(f"MIG layout {' + '.join(profiles)} does not fit one {device.name} "
                          f"(valid whole-card layouts: {layouts})", where)
    return resolved
