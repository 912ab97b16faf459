"""The store's main test: a child saves masks in a loop, the parent SIGKILLs it at random moments.

After every kill: the mask on disk is the last committed version or the one being saved, read
in full and compared by sha256 (never torn); ``PRAGMA integrity_check`` is ok; the database and
the files agree (sha256, voxel count, volume, the last audit row); reopening repairs by itself
(orphans and temporaries removed, nothing reported). The child also approves every fifth save,
so the approved -> corrected reopening is killed too.

CI runs 10 kills on an 8 x 64 x 64 case (a few seconds); the environment scales it, and the full
run (documented in docs/project.md) is::

    STROKELENS_CRASH_KILLS=60 STROKELENS_CRASH_SHAPE=22,256,256 \\
        pytest -q -s tests/test_project_crash.py
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time

import numpy as np
import pytest
from helpers import write_isles_case

from strokelens.core.dataset import open_dataset
from strokelens.core.metrics import volume_ml
from strokelens.core.project import schema
from strokelens.core.project.store import MASKS, ProjectStore, mask_sha256

KILLS = int(os.environ.get("STROKELENS_CRASH_KILLS", "10"))
SHAPE_ZYX = tuple(int(n) for n in os.environ.get("STROKELENS_CRASH_SHAPE", "8,64,64").split(","))


def _child(project, data, case, start: int, fd: int) -> None:
    """Save versions ``start, start + 1, ...`` until killed, saying when each begins and ends.

    Forked from the test process, which has imported everything already: a kill costs no
    interpreter start-up (1-2 s here), so the reduced run stays a few seconds."""
    store = ProjectStore.open(project, data)
    assert store.writable, store.read_only_reason
    os.write(fd, b"ready\n")
    i = start
    while True:
        os.write(fd, f"begin {i}\n".encode())
        store.save_mask(case, version(i, case.shape), "crash-test", "autosave", "ens")
        os.write(fd, f"saved {i}\n".encode())
        if i % 5 == 0:
            store.approve(case.key, "crash-test")
        i += 1


def _spawn(project, data, case, start: int) -> tuple[int, int]:
    """The child's pid and the read end of its pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(read)
            _child(project, data, case, start, write)
        finally:
            os._exit(1)
    os.close(write)
    return pid, read


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def version(i: int, shape) -> np.ndarray:
    rng = np.random.default_rng(i)
    return (rng.random(shape) < rng.uniform(0.01, 0.3)).astype(np.uint8)


def _last(lines: list[str], word: str) -> int | None:
    found = [int(line.split()[1]) for line in lines if line.startswith(word + " ")]
    return found[-1] if found else None


def _check(tmp_path, data, case, candidates: list[int]) -> int:
    """Every post-crash property; returns which candidate the store holds."""
    db = tmp_path / "project" / schema.DB_NAME
    conn = sqlite3.connect(db)
    try:
        assert schema.integrity_problem(conn) is None
    finally:
        conn.close()
    with ProjectStore.open(tmp_path / "project", data) as store:
        assert store.writable and store.problems == {}
        record = store.record(case.key)
        mask = store.load_mask(case.key)  # reads the whole file, checks its sha256
        shas = {mask_sha256(version(i, case.shape)): i for i in candidates}
        assert record.mask_sha256 in shas, "the mask is neither the old nor the new version"
        held = shas[record.mask_sha256]
        np.testing.assert_array_equal(mask, version(held, case.shape))
        assert record.mask_voxels == int(np.count_nonzero(mask))
        assert record.mask_ml == pytest.approx(volume_ml(mask, case.spacing))
        assert store.audit(case.key)[-1].sha_after == record.mask_sha256
        assert store.verify() == {}
        files = [p.name for p in (store.path / MASKS).rglob("*") if p.is_file()]
        assert files == [f"{record.mask_sha256}.nii.gz"], "debris left after the repair"
    return held


def _run(tmp_path, kills: int, shape_zyx) -> dict:
    data = tmp_path / "data"
    write_isles_case(data / "case_1", shape_xyz=shape_zyx[::-1])
    case = open_dataset(data).load(0)
    with ProjectStore.open(tmp_path / "project", data, create=True) as store:
        store.save_mask(case, version(0, case.shape), "crash-test", "save", "ens")
    rng = random.Random(20240615)
    committed, start, mid_save, newer = 0, 1, 0, 0
    t0 = time.perf_counter()
    for _ in range(kills):
        pid, fd = _spawn(tmp_path / "project", data, case, start)
        try:
            first = os.read(fd, 6)
            assert first == b"ready\n", first
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        lines = _read_all(fd).splitlines()
        os.close(fd)
        begun, saved = _last(lines, "begin"), _last(lines, "saved")
        candidates = [saved if saved is not None else committed]
        if begun is not None and begun != saved:
            candidates.append(begun)  # killed inside save_mask
            mid_save += 1
        held = _check(tmp_path, data, case, candidates)
        newer += held == begun != saved
        committed = held
        start = max(start, (begun if begun is not None else start - 1) + 1)
    return {
        "kills": kills,
        "saves": start - 1,
        "mid_save": mid_save,
        "newer": newer,
        "seconds": time.perf_counter() - t0,
    }


def test_sigkill_during_saves_never_loses_or_tears_a_mask(tmp_path):
    figures = _run(tmp_path, KILLS, SHAPE_ZYX)
    print(f"crash test {SHAPE_ZYX}: {figures}")
    assert figures["mid_save"] > 0  # kills do land inside saves
