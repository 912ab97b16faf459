"""The command line's last line of defence: an unexpected failure is one line plus a logged
traceback (exit 2), and Ctrl+C stops cleanly (exit 130), worker processes included."""

import os
import signal
import subprocess
import sys

import pytest

from strokelens.app import cli
from strokelens.app.commands import info


def test_unexpected_error_is_one_line_and_a_logged_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def broken(args):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(info, "run", broken)
    assert cli.main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    log = tmp_path / "state" / "strokelens" / "log" / "cli.log"
    assert err == [
        "strokelens info: unexpected error: ZeroDivisionError: float division by zero; "
        f"traceback in {log}"
    ]
    text = log.read_text()
    assert f"strokelens info {tmp_path}" in text and "Traceback" in text and "in broken" in text


def test_unexpected_error_without_a_writable_log_folder_still_exits_2(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "state").write_text("a file where the log folder would go")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(info, "run", lambda args: {}["missing"])
    assert cli.main(["info", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err.strip() == "strokelens info: unexpected error: KeyError: 'missing'"
    )


@pytest.mark.heavy
def test_ctrl_c_stops_phantom_workers_cleanly(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it, while two workers generate."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    command = [sys.executable, "-m", "strokelens.app.cli", "phantom", "--out", str(tmp_path)]
    proc = subprocess.Popen(
        [*command, "--cases", "12", "--seed", "1", "--slices", "2", "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        # as from a terminal: a background job (nohup, `&` in a script) starts with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = proc.stdout.readline()  # "wrote ...": the pool is busy with the next cases
        assert first.startswith("wrote "), first + proc.stderr.read()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.strip() == "strokelens phantom: interrupted"
    written = 1 + out.count("wrote ")
    assert written < 12  # the queued cases were cancelled, not generated before exiting
    # the cases being generated at the interrupt were finished: no half-written case is left
    cases = sorted((tmp_path / "TRAINING").iterdir())
    files = [sorted(p.name for p in case.rglob("*") if p.is_file()) for case in cases]
    assert all(len(f) == len(files[0]) for f in files), [len(f) for f in files]
    assert len(files[0]) == 14 and not any(name.endswith(".tmp") for f in files for name in f)
