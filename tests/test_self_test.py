"""``strokelens --self-test`` from source: it passes on the demo's first case, and a problem ends
in exit 1 with its reason, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from strokelens.app.cli import main
from strokelens.core.demo import DEMO_SEED


def test_bad_expectations_file_is_named(tmp_path, capsys):
    bad = tmp_path / "self_test.json"
    bad.write_text('{"case": "training/case_1", "dice": 1.5, "tolerance": 0.01}')
    assert main(["--self-test", "--expected", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "self_test.json" in err and "dice" in err and "Traceback" not in err


def test_a_folder_that_is_not_the_demo_fails_its_check_and_the_rest_still_runs(tmp_path, capsys):
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "notes.txt").write_text("not a demo")
    assert main(["--self-test", "--demo-dir", str(demo)]) == 1
    out = capsys.readouterr()
    assert "FAIL demo data:" in out.out and "no complete demo data set" in out.out
    assert "ok   retrain worker" in out.out  # independent of the data: still checked
    assert "engine process" not in out.out and "self-test FAILED: 1 check" in out.err
    assert (demo / "notes.txt").read_text() == "not a demo"  # never touched


@pytest.mark.heavy
def test_self_test_passes_from_source(tmp_path):
    """On a demo-layout folder holding the demo's first two training cases (case 1 is the
    demo's own: one seed, one plan), generated here: the whole demo takes minutes."""
    from strokelens.core.phantom import generate_dataset

    demo = tmp_path / "demo"
    generate_dataset(demo, 2, seed=DEMO_SEED, split="training")
    (demo / "TESTING").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "strokelens.app.cli", "--self-test", "--demo-dir", str(demo)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for check in ("demo data", "engine process", "retrain worker", "window"):
        assert f"ok   {check}:" in done.stdout
    assert "expected" in done.stdout and "self-test passed" in done.stdout
