"""docs/hardware.md, written from the catalogs themselves, so the facts the README cites live in
the repository and cannot drift from what the simulator uses.

``python -m hardware.catalog_doc > docs/hardware.md`` rewrites it; a test checks the file is
current. Sources of the figures: vendor datasheets (GPUs, links), NVIDIA's MIG user guide and
real ``nvidia-smi`` output (MIG), the models' published ``config.json`` (models), and the
measurements listed under Calibration (each named by its setting in ``hardware.calibrate``).
"""

from __future__ import annotations

from hardware.devices import GIB, device_names, get_device
from hardware.links import LINKS
from hardware.mig import mig_table
from hardware.models import get_model, model_names


def _num(v: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None or v == 0 else fmt.format(v)


def _devices() -> list[str]:
    rows = ["| device | arch | BF16 TFLOPS | FP8 TFLOPS | memory GiB | HBM GB/s | SMs | NVLink GB/s | host link GB/s "
            "| C2C GB/s | Grace GiB | TDP W | USD / GPU-hour |", "|" + "---|" * 13]
    for name in device_names():
        d = get_device(name)
        rows.append(f"| {name} | {d.arch} | {_num(d.bf16_tflops)} | {_num(d.fp8_tflops)} | "
                    f"{d.memory_bytes / GIB:.1f} | {_num(d.hbm_gbps)} | {d.num_sms} | {_num(d.nvlink_gbps)} | "
                    f"{_num(d.host_link_gbps)} | {_num(d.c2c_gbps)} | {_num((d.grace_memory_bytes or 0) / GIB)} | "
                    f"{_num(d.tdp_w)} | {_num(d.price_per_gpu_hour, '{:.2f}')} |")
    return rows


def _models() -> list[str]:
    rows = ["| model | layers | hidden | heads | KV heads | head dim | experts / top-k | params total / active (B) "
            "| KV bytes per token (bf16) |", "|" + "---|" * 9]
    for name in model_names():
        m = get_model(name)
        experts = f"{m.num_experts} / {m.top_k}" if m.is_moe else "-"
        total = f"{m.num_params / 1e9:.2f}"
        active = f"{total} / {m.num_active_params / 1e9:.2f}" if m.is_moe else total
        rows.append(f"| {name} | {m.num_layers} | {m.hidden} | {m.num_heads} | {m.num_kv_heads} | {m.head_dim} | "
                    f"{experts} | {active} | {m.kv_bytes_per_token('bf16'):,.0f} |")
    return rows


def _links() -> list[str]:
    rows = ["| link | GB/s | latency us | notes |", "|---|---|---|---|"]
    for name, link in LINKS.items():
        rows.append(f"| {name} | {link.gbps:,.0f} | {link.latency_s * 1e6:g} | {link.notes} |")
    return rows


def _mig() -> list[str]:
    rows = ["| device | profile | SMs | usable GiB | memory slices | starts | estimate |", "|" + "---|" * 7]
    for name in device_names():
        d = get_device(name)
        if not d.mig_table:
            continue
        for profile in mig_table(d).values():
            rows.append(f"| {name} | {profile.name} | {profile.num_sms} | {profile.usable_gib:g} | "
                        f"{profile.memory_slices} | {', '.join(map(str, profile.starts))} | "
                        f"{'yes' if profile.uncertain else ''} |")
    return rows


def _calibration() -> list[str]:
    from hardware.calibrate import points

    rows = ["| level | setting | measured | unit |", "|---|---|---|---|"]
    for p in points():
        rows.append(f"| {p.level} | {p.setting} | {p.measured:g} | {p.unit} |")
    return rows


def render() -> str:
    """The whole of docs/hardware.md."""
    parts = [
        "# Hardware catalog and calibration points",
        "",
        "Written by `python -m hardware.catalog_doc > docs/hardware.md` from the catalogs the simulator "
        "uses (`hardware/devices.py`, `models.py`, `links.py`, `mig.py`, `calibrate.py`); a test keeps it "
        "current. TFLOPS are dense; GB/s = 1e9 bytes/s; prices are placeholders to override. Sources: "
        "vendor datasheets (GPUs, links), NVIDIA's MIG user guide and `nvidia-smi` output (MIG sizes), "
        "each model's published `config.json`, and the published measurements below.",
        "",
        "## GPUs", "", *_devices(), "",
        "## Models", "", *_models(), "",
        "## Links", "", *_links(), "",
        "## MIG profiles", "", *_mig(), "",
        "## Calibration points (in-sample: the constants are fitted to these)", "", *_calibration(), "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
