"""``strokelens info``: text and JSON summaries, non-zero exit on unreadable input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import write_isles_case

from strokelens.app.cli import main
from strokelens.core.dataset import load_case
from strokelens.core.errors import DataError
from strokelens.core.preprocessing import load_scaling, normalize
from strokelens.resources import resource_path


def test_info_json(tmp_path, capsys):
    write_isles_case(tmp_path / "TRAINING" / "case_1", patient="P1")
    write_isles_case(tmp_path / "TRAINING" / "case_2", patient="P1", frames=6)
    broken = write_isles_case(tmp_path / "TESTING" / "case_1", truth=False)
    broken["CT_Tmax"].parent.rename(tmp_path / "moved")
    assert main(["info", str(tmp_path), "--json"]) == 1  # a missing map is an error
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_cases"] == 3 and summary["n_patients"] == 2
    rows = {c["key"]: c for c in summary["cases"]}
    c2 = rows["training/case_2"]
    assert c2["patient"] == "P1" and c2["slices"] == 4 and c2["frames"] == 6
    assert c2["spacing"] == [5.0, 0.9, 0.9]
    assert c2["lesion_ml"] == round(48 * 0.9 * 0.9 * 5 / 1000, 3)
    assert rows["testing/case_1"]["channels"] == ["CT", "CBF", "CBV", "MTT"]
    assert summary["errors"] == [
        "testing/case_1: missing map Tmax (no folder SMIR.Brain.XX.O.CT_Tmax.<id>)"
    ]


def test_info_text_and_errors(tmp_path, capsys):
    write_isles_case(tmp_path / "case_1")
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "1 cases, 1 patients" in out
        and "case_1" in out
        and "no problems found (checked: headers)" in out
    )
    assert main(["info", str(tmp_path / "nope")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_console_script_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "strokelens.app.cli", "info", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "no cases found" in proc.stderr


def load_scaling_text() -> str:
    return resource_path("configs", "preprocessing.toml").read_text()


def test_normalize_uses_config_ranges(tmp_path):
    write_isles_case(tmp_path / "case_1")
    case = load_case(tmp_path / "case_1")
    x = normalize(case)
    assert x.shape == (4, 5, 20, 24) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    cbf = load_scaling()["CBF"]
    np.testing.assert_allclose(
        x[:, 1], np.clip(case.channels["CBF"], cbf.low, cbf.high) / (cbf.high - cbf.low), rtol=1e-6
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(load_scaling_text().replace("high = 100.0", "high = -1.0", 1))
    with pytest.raises(DataError, match="high"):
        load_scaling(bad)
