"""Power-cut approximation for the project store, on an ext4 loop device (root only; not CI).

Each round: a child forked from this script saves masks in a loop on a loop-mounted ext4 file
system; it is SIGKILLed after a random 0.2-1.2 s and the loop device's backing file is copied at
once. The copy holds what the file system had sent to the "disk" by then: fsynced data is in it,
dirty pages the kernel had not yet written back are not (ext4 writes dirty data back after up to
30 s, its journal every 5 s), which is what a power cut at that moment leaves. The copy is then
mounted in place of the original (ext4 replays its journal) and checked as in the crash test:
integrity_check, the mask is the last committed version or the one being saved (full read),
database and file agree, reopening repairs by itself. The next round goes on from the copy.

Not a perfect power cut: the copy takes some milliseconds during which write-back may go on,
and the disk has no volatile cache to reorder writes (device-mapper's dm-flakey / dm-log-writes,
which could drop writes at an exact point, is not available in this kernel).

Run as root: python tests/power_loss.py [ROUNDS]
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers import write_isles_case
from test_project_crash import _check, _last, _read_all, _spawn, version

from strokelens.core.dataset import open_dataset
from strokelens.core.project.store import ProjectStore


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def mount(image: Path, mnt: Path) -> str:
    loop = sh("losetup", "-f", "--show", str(image))
    sh("mount", loop, str(mnt))
    return loop


def unmount(mnt: Path, loop: str) -> None:
    sh("umount", str(mnt))
    sh("losetup", "-d", loop)


def main(rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="strokelens-power-"))
    image, mnt = work / "disk.img", work / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(96 << 20)
    sh("mkfs.ext4", "-q", str(image))
    loop = mount(image, mnt)
    data = mnt / "data"
    write_isles_case(data / "case_1", shape_xyz=(256, 256, 22))
    case = open_dataset(data).load(0)
    with ProjectStore.open(mnt / "project", data, create=True) as store:
        store.save_mask(case, version(0, case.shape), "power", "save", "ens")
    os.sync()
    rng = random.Random(7)
    committed, start, mid, newer, t0 = 0, 1, 0, 0, time.perf_counter()
    for n in range(rounds):
        pid, fd = _spawn(mnt / "project", data, case, start)
        assert os.read(fd, 6) == b"ready\n"
        time.sleep(rng.uniform(0.2, 1.2))
        os.kill(pid, signal.SIGKILL)
        snapshot = work / "snap.img"
        shutil.copyfile(image, snapshot)  # the "disk" at the cut
        os.waitpid(pid, 0)
        lines = _read_all(fd).splitlines()
        os.close(fd)
        unmount(mnt, loop)
        snapshot.replace(image)
        loop = mount(image, mnt)  # ext4 replays its journal
        begun, saved = _last(lines, "begin"), _last(lines, "saved")
        candidates = [saved if saved is not None else committed]
        if begun is not None and begun != saved:
            candidates.append(begun)
            mid += 1
        held = _check(mnt, data, case, candidates)
        newer += held == begun != saved
        committed, start = held, max(start, (begun if begun is not None else start - 1) + 1)
        print(f"round {n + 1}: saves up to {begun}, store holds {held}", flush=True)
    unmount(mnt, loop)
    shutil.rmtree(work)
    print(
        f"power-cut rounds {rounds}: saves {start - 1}, cut inside a save {mid}, "
        f"newer version kept {newer}, {time.perf_counter() - t0:.1f} s, all checks passed"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
