"""A10G hosts without GPU peer-to-peer: TP all-reduces priced as NCCL's ring through host memory (fid11)."""

from __future__ import annotations

import pytest

from hardware import corpus_predict as cp
from hardware import devices as hw_devices
from hardware import fidelity as fid
from hardware import fit_v05
from hardware.analytic import AnalyticCostModel, AnalyticParams, allreduce_choice
from hardware.calibration_constants import ALLREDUCE_ALGOS
from hardware.devices import get_device, load_device_file
from hardware.links import allreduce_time_s

SOURCE = "pytorch127077_a10g_allreduce"


def _rows() -> list[dict]:
    return [r for r in cp.load_corpus() if r["source"] == SOURCE]


def test_the_source_is_calibration_and_an_operator_row():
    rows = _rows()
    assert len(rows) == 1 and fid.split_of(SOURCE) == "calibration"
    assert all(fid.kind_group(r) == "operator" and r["metric"] == "allreduce_us" for r in rows)


def test_the_row_is_reproduced_by_the_solved_efficiency():
    (row,) = _rows()
    assert cp.predict(row) == pytest.approx(row["value"], rel=0.002)
    solved = fit_v05.solve_pcie_shm_efficiency()
    assert ALLREDUCE_ALGOS["pcie_shm"].bus_efficiency == pytest.approx(solved, rel=0.005)
    assert 0.0 < solved <= ALLREDUCE_ALGOS["pcie_ring"].bus_efficiency  # fid11's adoption rule


def test_only_peerless_pcie_gpus_stage_through_host_memory():
    a10g, l4, a100 = get_device("A10G"), get_device("L4"), get_device("A100-80GB")
    assert not a10g.gpu_p2p and l4.gpu_p2p and a100.gpu_p2p
    assert allreduce_choice(a10g, 1 << 20, 4, custom=False) == ("pcie_shm", a10g.host_link_gbps)
    assert allreduce_choice(a10g, 1 << 20, 4, custom=True)[0] == "pcie_shm"  # no custom kernel over PCIe
    assert allreduce_choice(l4, 1 << 20, 4)[0] == "pcie_ring"
    assert allreduce_choice(a100, 1 << 20, 4)[0] == "two_shot"
    assert allreduce_choice(a10g, 1 << 20, 4, choice="pcie_ring")[0] == "pcie_ring"  # an explicit choice wins


def test_tp4_decode_step_on_a10g_pays_the_host_memory_all_reduce():
    hw = {"device": "A10G", "model": "Llama-2-7B", "tp": 4, "pp": 1, "weight_dtype": "fp16", "kv_dtype": "fp16"}

    class HW:
        pass

    h = HW()
    for k, v in hw.items():
        setattr(h, k, v)
    shm = AnalyticCostModel(AnalyticParams(), h).decode_step_times_s(64, 64 * 512, 1)[0]
    ring = AnalyticCostModel(AnalyticParams(allreduce="pcie_ring"), h).decode_step_times_s(64, 64 * 512, 1)[0]
    msg = 64 * 4096 * 2  # batch x hidden x 2 bytes, two all-reduces per layer, 32 layers
    extra = 64 * (allreduce_time_s(msg, 4, 32.0, "pcie_shm") - allreduce_time_s(msg, 4, 32.0, "pcie_ring"))
    assert shm - ring == pytest.approx(extra, rel=0.02)


def test_a_device_file_based_on_the_a10g_keeps_or_overrides_the_flag(tmp_path, monkeypatch):
    # the entries it adds go with the test (the hardware doc's test renders the whole catalog)
    monkeypatch.setattr(hw_devices, "_CATALOG", dict(hw_devices._CATALOG))
    monkeypatch.setattr(hw_devices, "_ALIASES", dict(hw_devices._ALIASES))
    path = tmp_path / "devices.yaml"
    path.write_text("devices:\n  a10g-p2p-test: {base: A10G, gpu_p2p: true}\n  a10g-copy-test: {base: A10G}\n")
    load_device_file(path)
    assert get_device("a10g-p2p-test").gpu_p2p and not get_device("a10g-copy-test").gpu_p2p
