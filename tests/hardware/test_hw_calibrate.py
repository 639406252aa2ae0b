"""The calibration table meets its targets and prints as text and JSON."""

from __future__ import annotations

import json

from hardware import calibrate


def test_calibration_targets_met():
    result = calibrate.evaluate()
    assert len(result["points"]) >= 40
    bad = [p for p in result["points"] if not p["within_target"]]
    assert not bad, bad
    assert result["median_abs_error"] <= 0.10


def test_main_text_and_json(capsys):
    assert calibrate.main(["--no-corpus"]) == 0
    text = capsys.readouterr().out
    assert "median absolute error" in text and "TRT-LLM" in text
    assert calibrate.main(["--json", "--no-corpus"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"points", "median_abs_error"}  # the corpus report adds "fidelity" without --no-corpus
    assert {"setting", "measured", "predicted", "rel_error"} <= set(data["points"][0])
