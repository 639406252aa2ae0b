"""Device catalog, user device files, MIG slices and layouts."""

from __future__ import annotations

import pytest

import hardware.devices as hw_devices
from hardware.devices import GIB, device_names, get_device, load_device_file
from hardware.mig import valid_layouts, validate_layout
from sim.errors import ConfigError

SECTION_1 = ["H100-SXM", "A100-80GB", "A100-40GB", "H100-PCIe", "H200", "GH200-96GB", "GH200-144GB",
             "B200", "GB200", "L40S", "L4", "A10G", "MI300X"]


def test_catalog_covers_section_1():
    assert set(SECTION_1) <= set(device_names())
    for name in SECTION_1:
        d = get_device(name)
        assert d.bf16_tflops > 0 and d.memory_bytes > 0 and d.hbm_gbps > 0 and d.tdp_w > 0
        assert d.prefill_power_w >= d.decode_power_w >= d.idle_power_w > 0


def test_key_figures():
    h100 = get_device("h100")
    assert h100.name == "H100-SXM"
    figures = (h100.bf16_tflops, h100.fp8_tflops, h100.hbm_gbps, h100.num_sms, h100.nvlink_gbps)
    assert figures == (989, 1979, 3350, 132, 450)
    assert (h100.prefill_power_w, h100.decode_power_w, h100.idle_power_w) == (700, 380, 75)
    a100 = get_device("A100-80GB")
    assert (a100.prefill_power_w, a100.decode_power_w, a100.idle_power_w) == (400, 250, 63)
    assert a100.peak_flops("fp8") == 312e12  # no FP8 units: weight-only, BF16 math
    assert get_device("GH200-96GB").c2c_measured_gbps == 346


def test_unknown_device_suggests():
    with pytest.raises(ConfigError, match="did you mean 'H100-SXM'"):
        get_device("H100-SMX")


@pytest.mark.parametrize("profile,sms,gib,slices", [
    ("1g.10gb", 16, 9.75, 1), ("1g.20gb", 26, 19.62, 2), ("2g.20gb", 32, 19.62, 2),
    ("3g.40gb", 60, 39.50, 4), ("4g.40gb", 64, 39.50, 4), ("7g.80gb", 132, 79.25, 8),
])
def test_h100_mig_slices(profile, sms, gib, slices):
    s = get_device(f"H100-SXM:{profile}")
    assert s.num_sms == sms and s.memory_bytes == int(gib * GIB) and s.memory_slices == slices
    assert s.bf16_tflops == pytest.approx(989 * sms / 132)
    assert s.hbm_gbps == pytest.approx(3350 * slices / 8)
    assert s.nvlink_gbps == 0 and s.parent == "H100-SXM"


def test_other_mig_tables():
    g = get_device("GH200-96GB:1g.12gb")
    assert (g.num_sms, g.memory_bytes, g.hbm_gbps) == (16, 11 * GIB, 500)
    assert g.c2c_measured_gbps == 346  # the C2C link stays whole: slices share it
    a = get_device("A100-80GB:3g.40gb")
    assert a.num_sms == 42 and a.bf16_tflops == pytest.approx(312 * 42 / 108)
    assert get_device("H200:7g.141gb").memory_bytes == 140 * GIB
    with pytest.raises(ConfigError, match="no MIG"):
        get_device("L4:1g.5gb")
    with pytest.raises(ConfigError, match="unknown MIG profile"):
        get_device("H100-SXM:5g.50gb")


@pytest.mark.parametrize("layout", [["7g.80gb"], ["4g.40gb", "3g.40gb"], ["3g.40gb", "2g.20gb", "2g.20gb"],
                                    ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"], ["4g.40gb", "1g", "1g", "1g"],
                                    ["1g.10gb"] * 7, ["1g.20gb"] * 3 + ["1g.10gb"]])
def test_valid_layouts_accepted(layout):
    validate_layout("H100-SXM", layout)


@pytest.mark.parametrize("layout", [["4g.40gb", "4g.40gb"], ["1g.10gb"] * 8, ["7g.80gb", "1g.10gb"],
                                    ["2g.20gb"] * 4, ["1g.20gb"] * 5])
def test_impossible_layouts_list_valid_ones(layout):
    with pytest.raises(ConfigError) as err:
        validate_layout("H100-SXM", layout)
    assert "4g.40gb + 3g.40gb" in str(err.value)


def test_valid_layouts_are_maximal():
    layouts = valid_layouts(get_device("H100-SXM"))
    assert ["7g.80gb"] in layouts and ["4g.40gb", "3g.40gb"] in layouts
    assert ["1g.10gb"] * 7 in layouts


def test_user_device_file(tmp_path, monkeypatch):
    # the entries it adds go with the test (other tests, e.g. the hardware doc's, read the catalog)
    monkeypatch.setattr(hw_devices, "_CATALOG", dict(hw_devices._CATALOG))
    monkeypatch.setattr(hw_devices, "_ALIASES", dict(hw_devices._ALIASES))
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n"
        "  H100-spot:\n    base: H100-SXM\n    price_per_gpu_hour: 1.5\n    aliases: [h100-cheap]\n"
        "  Toy-GPU:\n    bf16_tflops: 100\n    memory_gib: 16\n    hbm_gbps: 500\n    tdp_w: 200\n"
    )
    assert load_device_file(path) == ["H100-spot", "Toy-GPU"]
    spot = get_device("h100-cheap")
    assert spot.price_per_gpu_hour == 1.5 and spot.bf16_tflops == 989
    toy = get_device("Toy-GPU")
    assert toy.memory_bytes == 16 * GIB and toy.prefill_power_w == 200


def test_user_device_file_errors_name_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("devices:\n  Bad-GPU:\n    bf16_tflop: 10\n")
    with pytest.raises(ConfigError) as err:
        load_device_file(path)
    assert str(path) in str(err.value) and "devices.Bad-GPU.bf16_tflop" in str(err.value)
    assert "did you mean 'bf16_tflops'" in str(err.value)
    path.write_text("Bad-GPU:\n  bf16_tflops: fast\n  memory_gib: 1\n  hbm_gbps: 1\n")
    with pytest.raises(ConfigError, match="Bad-GPU.bf16_tflops"):
        load_device_file(path)
    assert "Bad-GPU" not in device_names()
