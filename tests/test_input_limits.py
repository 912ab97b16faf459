"""Corrupt, hostile and oversized input: refused with the file named, never used silently, never
a hang or a memory blow-up.

Families: corrupt gzip streams (the CRC and length trailer are checked), header bombs (declared
sizes beyond ``core.limits``, refused from the header in a child process whose address space is
capped, so a regression fails with MemoryError instead of taking the machine's memory), a real
gzip bomb (a 1 MB file inflating to 1 GiB past its header's size), non-finite values made by
scaling or stored in the 4D source, and FIFOs and devices given where a regular file is
expected (through the real command line, under a timeout).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import (
    affine,
    bounded,
    save,
    set_scaling,
    volume_xyz,
    write_isles_case,
    write_simple_case,
)

from strokelens.app.cli import main
from strokelens.core.dataset import load_case
from strokelens.core.errors import DataError
from strokelens.core.limits import MAX_DOCUMENT_BYTES, cpu_count

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (24, 20, 4)  # x, y, z on disk


def nifti_bytes(data: np.ndarray) -> bytes:
    return nib.Nifti1Image(data, affine()).to_bytes()


# --- corrupt gzip -------------------------------------------------------------------------------


def stored_gzip(raw: bytes) -> bytes:
    """``raw`` gzipped without compression (stored deflate blocks): a flipped byte in the
    stream then changes the content and nothing but the CRC can tell."""
    return gzip.compress(raw, compresslevel=0, mtime=0)


def _flip_byte(raw: bytes) -> bytes:
    data = bytearray(stored_gzip(raw))
    data[10 + 5 + 400] ^= 0xFF  # gzip header, stored-block header, then a voxel byte
    return bytes(data)


def _truncated_trailer(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)[:-8]  # every voxel there, the CRC and length gone


def _trailer_length(raw: bytes) -> bytes:
    data = gzip.compress(raw, mtime=0)
    return data[:-4] + struct.pack("<I", len(raw) + 16)


def _trailer_crc(raw: bytes) -> bytes:
    data = gzip.compress(raw, mtime=0)
    return data[:-8] + struct.pack("<I", zlib.crc32(raw) ^ 1) + data[-4:]


def _trailing_member(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0) + gzip.compress(b"\x01" * 64, mtime=0)


def _trailing_garbage(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0) + b"garbage!"


def _truncated_stream(raw: bytes) -> bytes:
    data = gzip.compress(raw, mtime=0)
    return data[: len(data) * 3 // 4]


CORRUPT_GZIP = {
    "flipped byte in the deflate stream": (_flip_byte, "CRC check failed"),
    "stream cut before its trailer": (_truncated_trailer, "truncated or corrupt gzip data"),
    "stream cut in the voxels": (_truncated_stream, "truncated or corrupt"),
    "wrong length in the trailer": (_trailer_length, "Incorrect length"),
    "wrong CRC in the trailer": (_trailer_crc, "CRC check failed"),
    "a second member with more data": (_trailing_member, "more than the 7680 bytes"),
    "garbage after the stream": (_trailing_garbage, "corrupt gzip data"),
}


@pytest.mark.parametrize("kind", CORRUPT_GZIP)
def test_corrupt_gzip_is_refused_naming_the_file(tmp_path, kind):
    corrupt, words = CORRUPT_GZIP[kind]
    write_simple_case(tmp_path / "case_1", SHAPE)
    cbf = tmp_path / "case_1" / "cbf.nii.gz"
    cbf.write_bytes(corrupt(nifti_bytes(volume_xyz("CT_MTT", SHAPE, 1).astype(np.float32))))
    with pytest.raises(DataError) as info:
        load_case(tmp_path / "case_1")
    assert info.value.path == cbf and words in info.value.problem


# --- header bombs and a gzip bomb, read in a child with a capped address space ----------------

#: The child reads the file with the address space capped at what it uses plus ``limit`` bytes
#: and prints what happened and how much its peak resident memory grew.
CHILD = """
import json, resource, sys
from pathlib import Path
from strokelens.core.errors import DataError
from strokelens.core.nifti import open_image, read_voxels

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

path, limit = Path(sys.argv[1]), int(sys.argv[2])
used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
before = rss()
try:
    read_voxels(path, open_image(path))
    outcome = "read"
except DataError as exc:
    outcome = "DataError: " + exc.problem
except MemoryError:
    outcome = "MemoryError"
print(json.dumps({"outcome": outcome, "grew": rss() - before}))
"""
CHILD_MEMORY = 256 << 20


def read_in_child(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(CHILD_MEMORY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def header(shape: tuple[int, ...], dtype=np.int16, vox_offset: int = 352) -> bytes:
    """A NIfTI-1 header declaring ``shape`` and the 4 bytes after it (no extension)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr["vox_offset"] = vox_offset
    return hdr.binaryblock + b"\x00" * 4


def gzip_bomb(head: bytes, zeros: int, chunk: int = 8 << 20) -> bytes:
    """One valid gzip member holding ``head`` then ``zeros`` zero bytes (a multiple of
    ``chunk``), made fast: one chunk's deflate blocks, flushed to a byte boundary, repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(zeros // chunk):
        crc = zlib.crc32(bytes(chunk), crc)
    size = (len(head) + zeros) & 0xFFFFFFFF
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return gzip_header + start + block * (zeros // chunk) + end + struct.pack("<II", crc, size)


#: name -> (file name, bytes, words of the refusal)
BOMBS = {
    "2048 x 2048 x 512 in a 2 MB .nii.gz": (
        "ct.nii.gz",
        lambda: gzip.compress(header((2048, 2048, 512)) + os.urandom(2 << 20), 1),
        "2048 in-plane voxels (at most 1024)",
    ),
    "1024 x 1024 x 512 volume: beyond the voxel budget": (
        "ct.nii.gz",
        lambda: gzip_bomb(header((1024, 1024, 512)), 1 << 30),
        "voxels (at most 67108864 in one volume)",
    ),
    "512 x 512 x 64 x 64 series (2 GiB) inflating to 1 GiB": (
        "4dpwi.nii.gz",
        lambda: gzip_bomb(header((512, 512, 64, 64)), 1 << 30),
        "voxels (at most 268435456 in one series)",
    ),
    "huge declared header extensions": (
        "ct.nii",
        lambda: header((8, 8, 2), vox_offset=1 << 30) + b"\x00" * 256,
        "vox_offset 1073741824",
    ),
    "a real gzip bomb: 64 x 64 x 4 x 16 declared, 1 GiB inflated": (
        "4dpwi.nii.gz",
        lambda: gzip_bomb(header((64, 64, 4, 16)), 1 << 30),
        "more than the 524288 bytes of voxels its header declares",
    ),
}


@pytest.mark.parametrize("kind", BOMBS)
def test_bombs_are_refused_with_bounded_memory(tmp_path, kind):
    name, make, words = BOMBS[kind]
    path = tmp_path / name
    path.write_bytes(make())
    result = read_in_child(path)
    assert result["outcome"].startswith("DataError: ") and words in result["outcome"], result
    assert result["grew"] < 32 << 20, result  # the 524288 bytes declared, never the 1 GiB


# --- non-finite values from scaling or in the 4D source ----------------------------------------


#: stored dtypes of a map whose scale (1e38) overflows float32 for each stored value (4 to 54)
SCALED_MAPS = {"int16": np.int16, "uint16": np.uint16, "int32": np.int32, "float32": np.float32}


@pytest.mark.parametrize("stored", SCALED_MAPS)
def test_map_scaled_to_infinity_is_zeroed_and_reported(tmp_path, stored):
    write_simple_case(tmp_path / "case_1", SHAPE)
    (tmp_path / "case_1" / "cbf.nii.gz").unlink()
    values = (volume_xyz("CT_MTT", SHAPE, 1) + 4).astype(SCALED_MAPS[stored])
    set_scaling(save(values, tmp_path / "case_1" / "cbf.nii"), 1e38, 0.0)
    case = load_case(tmp_path / "case_1")
    assert np.all(case.channels["CBF"] == 0)
    assert f"cbf.nii: {values.size} non-finite voxels (NaN/Inf) set to 0" in case.problems


def _source_series(frames: int = 12, dtype=np.int16) -> np.ndarray:
    return np.random.default_rng(0).normal(30, 5, (*SHAPE, frames)).astype(dtype)


def _nan_float_source(path: Path) -> None:
    series = _source_series(dtype=np.float32)
    series[3, 4, 1, 5] = np.nan
    series[0, 0, 0, 0] = -np.inf
    save(series, path)


def _int_source_scaled_to_infinity(path: Path) -> None:
    set_scaling(save(_source_series(), path), 1e38, 0)


def _float_source_scaled_to_infinity(path: Path) -> None:
    set_scaling(save(_source_series(dtype=np.float32), path), 1e38, 0)


SOURCES = {
    "NaN and -Inf stored in float32": _nan_float_source,
    "int16 scaled to Inf": _int_source_scaled_to_infinity,
    "float32 scaled to Inf": _float_source_scaled_to_infinity,
}


@pytest.mark.parametrize("kind", SOURCES)
def test_nonfinite_4d_source_is_refused_by_reader_and_perfusion(tmp_path, kind, capsys):
    paths = write_isles_case(tmp_path / "data" / "case_1", SHAPE, frames=12)
    source = paths["4DPWI"]
    source.unlink()
    SOURCES[kind](source)
    case = load_case(tmp_path / "data" / "case_1")
    with pytest.raises(DataError, match="non-finite voxels") as info:
        case.perfusion()
    assert info.value.path == source
    assert main(["perfusion", str(tmp_path / "data"), "--out", str(tmp_path / "maps")]) == 1
    err = capsys.readouterr().err
    assert f"{source}: " in err and "non-finite voxels (NaN/Inf) in the 4D source" in err
    assert not list((tmp_path / "maps").rglob("*.nii.gz"))


# --- FIFOs and devices where a regular file is expected ----------------------------------------


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def _dev_zero(path: Path) -> Path:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")
    return path


@pytest.fixture
def sandbox(ensemble, tmp_path) -> dict[str, Path]:
    """A simple-layout and an ISLES case, the ensemble's manifest and an output folder."""
    write_simple_case(tmp_path / "simple" / "case_1", (16, 12, 2))
    write_isles_case(tmp_path / "isles" / "case_1", (16, 12, 2))
    return {"root": tmp_path, "manifest": ensemble, "out": tmp_path / "out"}


def _predict(box: dict[str, Path], data: str, manifest: Path | None = None) -> list[str]:
    return [
        "predict",
        str(box["root"] / data),
        "--ensemble",
        str(manifest or box["manifest"]),
        "--threads",
        "1",
        "--out",
        str(box["out"]),
    ]


def _manifest_is(make):
    def argv(box):
        return _predict(box, "simple", make(box["root"] / "ensemble.json"))

    return argv


def _big_manifest(box):
    path = box["root"] / "big.json"
    path.write_text(" " * (MAX_DOCUMENT_BYTES + 1) + "{}")
    return _predict(box, "simple", path)


def _map_is(make, data: str, relative: str):
    def argv(box):
        make(box["root"] / data / "case_1" / relative)
        return _predict(box, data)

    return argv


def _config_fifo(box):
    config = _fifo(box["root"] / "cpu.toml")
    data, out = box["root"] / "simple", box["out"]
    return ["cv", "--config", str(config), "--data", str(data), "--out", str(out)]


def _subjects_fifo(box):
    _fifo(box["root"] / "simple" / "subjects.csv")
    return _predict(box, "simple")


def _cv_summary_fifo(box):
    (box["root"] / "run").mkdir()
    _fifo(box["root"] / "run" / "cv.json")
    return ["report", str(box["root"] / "run"), "--out", str(box["out"])]


CBF_ISLES = "SMIR.Brain.XX.O.CT_CBF.345561/SMIR.Brain.XX.O.CT_CBF.345561.nii"
FIFO = "is a FIFO (named pipe), not a regular file"
DEVICE = "is a character device, not a regular file"

#: name -> (argv maker, the file named in the message, the words)
DEVICES = {
    "--ensemble /dev/zero": (
        lambda box: _predict(box, "simple", Path("/dev/zero")),
        "/dev/zero",
        DEVICE,
    ),
    "--ensemble FIFO": (_manifest_is(_fifo), "ensemble.json", FIFO),
    "manifest of 1 MiB": (_big_manifest, "big.json", "ensemble manifest of more than 1048576"),
    "simple ct.nii.gz a FIFO": (_map_is(_fifo, "simple", "ct.nii.gz"), "ct.nii.gz", FIFO),
    "simple cbf.nii.gz -> /dev/zero": (
        _map_is(_dev_zero, "simple", "cbf.nii.gz"),
        "cbf.nii.gz",
        DEVICE,
    ),
    "ISLES CBF map a FIFO": (_map_is(_fifo, "isles", CBF_ISLES), CBF_ISLES, FIFO),
    "subjects.csv a FIFO": (_subjects_fifo, "subjects.csv", FIFO),
    "cv --config FIFO": (_config_fifo, "cpu.toml", FIFO),
    "report RUN with cv.json a FIFO": (_cv_summary_fifo, "cv.json", FIFO),
}


@pytest.mark.parametrize("kind", DEVICES)
def test_fifo_and_device_are_refused_without_hanging(sandbox, kind, capsys):
    make, named, words = DEVICES[kind]
    argv = make(sandbox)
    with bounded(seconds=30, memory=2 << 30):
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"{named}: {words}" in err


def test_fifo_sidecar_is_a_problem_of_the_case(sandbox, capsys):
    """The OT sidecar (read for the patient id) is optional: a FIFO there hung the listing; now
    it is a problem of the case, printed and written to predictions.json."""
    _fifo(next((sandbox["root"] / "isles" / "case_1").glob("SMIR.Brain.XX.O.OT.*/*.json")))
    with bounded(seconds=60, memory=2 << 30):
        assert main(_predict(sandbox, "isles")) == 0
    assert FIFO in capsys.readouterr().err
    row = json.loads((sandbox["out"] / "predictions.json").read_text())["cases"][0]
    assert any(FIFO in p and "unreadable sidecar" in p for p in row["problems"])


# --- threads and members ------------------------------------------------------------------------


def test_threads_beyond_the_cpus_are_refused(sandbox, capsys):
    argv = _predict(sandbox, "simple")
    argv[argv.index("--threads") + 1] = str(cpu_count() + 1)
    assert main(argv) == 2
    assert f"at most {cpu_count()} (the CPUs this process may use)" in capsys.readouterr().err


def test_more_than_64_members_are_refused(sandbox, capsys):
    manifest = json.loads(sandbox["manifest"].read_text())
    first = manifest["members"][0]
    manifest["members"] = [first | {"name": f"m{i}"} for i in range(65)]
    path = sandbox["manifest"].parent / "many.json"
    path.write_text(json.dumps(manifest))
    assert main(_predict(sandbox, "simple", path)) == 1
    assert (
        f"{path}: members: List should have at most 64 items after validation, not 65"
        in capsys.readouterr().err
    )


def test_an_open_interrupted_in_fdopen_raises_what_interrupted_it(tmp_path, monkeypatch):
    """A cancelling signal raised inside ``os.fdopen`` (whose file object may already own and
    have closed the descriptor) reaches the caller as itself, not as EBADF from a second close:
    seen as a retrain worker's cancel ending in "unexpected error: OSError" (exit 2, not 130)."""
    import os

    from strokelens.core import files

    class Cancelled(Exception):
        pass

    real = os.fdopen

    def interrupted(fd, *args, **kwargs):
        real(fd, *args, **kwargs).close()  # owned, then closed by its file object
        raise Cancelled

    path = tmp_path / "plan.json"
    path.write_text("{}")
    monkeypatch.setattr(files.os, "fdopen", interrupted)
    with pytest.raises(Cancelled):
        files.read_text(path, "plan")
