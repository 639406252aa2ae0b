"""docs/hardware.md is what ``python -m hardware.catalog_doc`` writes from the catalogs today."""

from pathlib import Path

from hardware.catalog_doc import render
from hardware.devices import device_names
from hardware.models import model_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "hardware.md"


def test_the_hardware_doc_is_current():
    assert DOC.read_text() == render(), "rerun: python -m hardware.catalog_doc > docs/hardware.md"


def test_every_device_and_model_is_listed():
    text = render()
    for name in device_names() + model_names():
        assert f"| {name} |" in text
