"""``strokelens predict`` and a faulty output folder: each fault is found before any model loads
and gives one message naming the folder; a killed run leaves no torn mask, no stale CSV, and its
temporary files are removed by the next run; names that are not UTF-8 are written, not a crash.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import write_isles_case, write_simple_case

from strokelens.app.cli import main
from strokelens.app.commands import predict
from strokelens.core.metrics import volume_ml
from strokelens.core.nifti import load_volume, spacing_zyx
from strokelens.core.writer import atomic_write, is_temporary_name

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``folder`` (skips the test where mounting is not possible)."""
    if not ROOT:
        pytest.skip("a tmpfs needs root to mount (the tests do not run as root)")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mount failed: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Write into ``folder`` until its file system is full."""
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()


@pytest.fixture
def data(tmp_path) -> Path:
    """One 64 x 64 x 4 case: its outputs take ~260 kB, more than the small tmpfs below holds."""
    write_simple_case(tmp_path / "data" / "case_1", shape_xyz=(64, 64, 4))
    return tmp_path / "data"


def out_is_a_file(tmp: Path, stack) -> tuple[Path, str]:
    (tmp / "out").write_text("not a folder")
    return tmp / "out", "is a file, not a folder"


def out_under_a_file(tmp: Path, stack) -> tuple[Path, str]:
    (tmp / "file").write_text("not a folder")
    return tmp / "file" / "out", "cannot be created (Not a directory)"


def read_only_permissions(tmp: Path, stack) -> tuple[Path, str]:
    if ROOT:
        pytest.skip("root ignores permissions (the tests run as root); see 'read-only mount'")
    out = tmp / "out"
    out.mkdir()
    out.chmod(0o555)
    stack.callback(out.chmod, 0o755)
    return out, "cannot be written (Permission denied)"


def read_only_mount(tmp: Path, stack) -> tuple[Path, str]:
    return stack.enter_context(tmpfs(tmp / "ro", "ro,size=1m")), "(Read-only file system)"


def full_disk(tmp: Path, stack) -> tuple[Path, str]:
    folder = stack.enter_context(tmpfs(tmp / "full", "size=256k"))
    fill(folder)
    return folder, "cannot be written: the disk is full (No space left on device)"


def too_little_space(tmp: Path, stack) -> tuple[Path, str]:
    folder = stack.enter_context(tmpfs(tmp / "small", "size=128k"))
    return folder, "not enough free space: 0.1 MiB free, the outputs take about 0.2 MiB"


def inside_the_data_set(tmp: Path, stack) -> tuple[Path, str]:
    return tmp / "data" / "case_1" / "out", f"lies inside the data set {tmp / 'data'}"


#: how the output folder is broken -> (the folder, the words of the message)
FAULTS: dict[str, Callable] = {
    "inside the data set": inside_the_data_set,
    "out is a file": out_is_a_file,
    "out under a file": out_under_a_file,
    "read-only permissions": read_only_permissions,
    "read-only mount": read_only_mount,
    "full disk": full_disk,
    "too little free space": too_little_space,
}


@pytest.mark.parametrize("fault", FAULTS)
def test_output_fault_is_one_message_before_any_model_loads(
    fault, data, ensemble, tmp_path, monkeypatch, capsys
):
    def no_engine(*args, **kwargs):
        raise AssertionError("the models were loaded before the output folder was checked")

    monkeypatch.setattr(predict, "Engine", no_engine)
    with contextlib.ExitStack() as stack:
        out, words = FAULTS[fault](tmp_path, stack)
        argv = ["predict", str(data), "--ensemble", str(ensemble), "--out", str(out)]
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"strokelens predict: error: {out}: ") and words in err, err
        assert "\n" not in err


def temporary_name(target: Path) -> str:
    """The name ``atomic_write`` really gives its temporary file for ``target``."""
    seen = []

    def fail(tmp: str) -> None:
        seen.append(Path(tmp).name)
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    return seen[0]


def test_stale_temporaries_are_removed_and_nothing_else(data, ensemble, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "maps").mkdir(parents=True)
    stale = [
        out / temporary_name(out / "case_1_mask.nii.gz"),
        out / temporary_name(out / "predictions.csv"),
        out / "maps" / temporary_name(out / "maps" / "case_1_prob.nii.gz"),
    ]
    assert all(is_temporary_name(p.name) for p in stale)
    for path in stale:
        path.write_bytes(b"half a file")
    kept = [out / "notes.tmp", out / ".notes.tmp.txt", out / "x.abcdefgh.tmp.nii.gz"]
    kept.append(out / ".a.nii.gz.abcdefgh.tmp.nii")  # the suffix is not the target's
    for path in kept:
        path.write_text("mine")
    target = tmp_path / "precious.nii.gz"
    target.write_text("outside")
    link = out / ".b.nii.gz.abcdefgh.tmp.nii.gz"
    link.symlink_to(target)
    argv = ["predict", str(data), "--ensemble", str(ensemble), "--out", str(out)]
    assert main([*argv, "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "mine" for p in kept) and target.read_text() == "outside"
    assert link.is_symlink()  # not a regular file: left alone
    for path in stale:
        assert f"removed {path}: a temporary file left by an interrupted run" in err


HOLD = """
import sys
from pathlib import Path
from strokelens.core.output import prepare_folders
with prepare_folders([Path(sys.argv[1])]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_second_run_into_a_locked_folder_is_refused_and_cleans_nothing(
    data, ensemble, tmp_path, monkeypatch, capsys
):
    """Another process holds the folder (as a running ``predict`` does): this run says so, exits
    1 before any model loads, and leaves that run's temporary files alone."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        busy = out / temporary_name(out / "case_1_mask.nii.gz")  # the other run's, being written
        busy.write_bytes(b"half a file")
        with monkeypatch.context() as m:
            m.setattr(predict, "Engine", lambda *a, **k: pytest.fail("models loaded"))
            argv = ["predict", str(data), "--ensemble", str(ensemble), "--out", str(out)]
            assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err == (
            f"strokelens predict: error: {out}: another run is writing there (it holds the "
            "folder's lock); wait for it to end or give another --out"
        )
        assert busy.exists()
    finally:
        holder.communicate("", timeout=30)
    assert main([*argv, "--threads", "1"]) == 0  # the lock ended with its holder
    assert not busy.exists()


def mask_volumes(out: Path) -> dict[str, float]:
    """Each mask on disk (read in full, CRC checked: never torn) -> its lesion volume."""
    volumes = {}
    for path in sorted(out.rglob("*.nii*")):
        assert not is_temporary_name(path.name), path
        data, img = load_volume(path, dtype=None)  # every map too: none is torn
        if path.parent.name != "maps":
            volumes[str(path.relative_to(out))] = volume_ml(data, spacing_zyx(img))
    return volumes


def assert_report_matches_masks(out: Path) -> list[dict]:
    """predictions.csv's rows each describe the mask on disk (volume equal); the JSON lists
    the same cases."""
    volumes = mask_volumes(out)
    table = out / "predictions.csv"  # absent while no case is done
    rows = list(csv.DictReader(table.open(newline=""))) if table.exists() else []
    for row in rows:
        assert float(row["all_ml"]) == pytest.approx(volumes[row["mask"]], abs=1e-6), row
    keys = [r["key"] for r in json.loads((out / "predictions.json").read_text())["cases"]]
    # the JSON is written after the CSV: a kill between the two leaves it one case behind
    assert keys in ([r["key"] for r in rows], [r["key"] for r in rows[:-1]])
    return rows


@pytest.mark.heavy
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_predict_leaves_no_torn_mask_and_no_stale_csv(sig, ensemble, tmp_path):
    for n in range(1, 7):
        write_isles_case(tmp_path / "data" / f"case_{n}", (64, 64, 8), 345560 + 10 * n, seed=n)
    out = tmp_path / "out"
    out.mkdir()
    # a previous run's report, whose volumes no mask of this run has
    names = [f"SMIR.strokelens.{345563 + 10 * n}.nii" for n in range(1, 7)]
    rows = "".join(f"case_{n},{name},999\n" for n, name in enumerate(names, 1))
    (out / "predictions.csv").write_text("key,mask,all_ml\n" + rows)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    argv = [sys.executable, "-m", "strokelens.app.cli", "predict", str(tmp_path / "data")]
    argv += ["--ensemble", str(ensemble), "--out", str(out), "--threads", "1"]
    proc = subprocess.Popen(
        argv,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("SMIR.*.nii"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)  # two masks are written: the run is mid-way
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == "strokelens predict: interrupted"
        assert "Traceback" not in err
        assert not [p for p in out.rglob("*") if is_temporary_name(p.name)]  # cleaned up
    else:
        assert proc.returncode == -signal.SIGKILL, err
    done = assert_report_matches_masks(out)
    assert len(done) < 6  # killed mid-way
    assert json.loads((out / "predictions.json").read_text())["finished"] is False

    # the next run removes what a SIGKILL can leave mid-write, and completes the report
    (out / "maps" / temporary_name(out / "maps" / "case_1_prob.nii.gz")).write_bytes(b"half")
    assert main([*argv[3:], "--threads", "1"]) == 0
    assert not [p for p in out.rglob("*") if is_temporary_name(p.name)]
    assert len(assert_report_matches_masks(out)) == 6


def test_names_that_are_not_utf8_are_written(ensemble, tmp_path, capsys):
    data = tmp_path / "data"
    files = write_isles_case(data / "case_1", shape_xyz=(16, 12, 2))
    odd = os.fsdecode(b"SMIR.\xff")  # an unknown modality folder: a problem in the row
    (files["CT"].parent.parent / odd).mkdir()
    write_isles_case(data / os.fsdecode(b"case_\xff"), shape_xyz=(16, 12, 2), first_id=345570)
    out = tmp_path / os.fsdecode(b"out_\xfe")
    argv = ["predict", str(data), "--ensemble", str(ensemble), "--out", str(out)]
    assert main([*argv, "--threads", "1"]) == 1  # the odd case folder is refused, by name
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "unexpected error" not in captured.err
    assert "case_\\udcff: skipped:" in captured.err
    assert "results in" in captured.out
    assert b"SMIR.\xff: unknown modality folder, ignored" in (out / "predictions.csv").read_bytes()
    report = json.loads((out / "predictions.json").read_text())
    (failed,) = report["failed"]
    assert os.fsencode(failed["key"]) == b"case_\xff"
    assert (
        os.fsencode(report["cases"][0]["problems"][0])
        == b"SMIR.\xff: unknown modality folder, ignored"
    )
    assert np.isfinite(report["cases"][0]["all_ml"])
