"""Reading NIfTI volumes defensively.

nibabel, gzip and numpy raise many different exceptions for broken files (EOFError, zlib.error,
BadGzipFile, HeaderDataError, ValueError...). Every one of them is turned into a ``DataError``
that names the file and says what is wrong, so a user sees "case_3/...CBF.nii: truncated" and
never a traceback from inside a library.

The reader opens the file itself (``files.open_regular``: no FIFO or device) and reads exactly
what the header declares, once the header has passed ``limits.check_shape``:

* the header and its extensions (at most ``MAX_HEADER_BYTES``) are parsed by nibabel from
  memory, so no declared size makes anything read or allocated before it is checked;
* the voxel data are read in one pass of exactly the declared size; a ``.nii.gz`` is then read
  to its end, so gzip checks its CRC and length trailer (nibabel's reader stops at the last
  voxel and never sees them: a file with flipped bytes was read as valid), and a stream that
  holds more than the header declares (a decompression bomb) is refused after one byte more;
* scaling (``scl_slope``/``scl_inter``) is applied in the requested float type, in place, so a
  4D series never takes a float64 copy; what overflows becomes Inf, and the callers check the
  result for non-finite values whatever the stored type.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError
from nibabel.volumeutils import apply_read_scaling

from strokelens.core.errors import DataError
from strokelens.core.files import open_regular
from strokelens.core.limits import MAX_HEADER_BYTES, check_shape

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: header size (``sizeof_hdr``) -> the single-file image class it belongs to
_IMAGE_CLASSES = {cls.header_class.sizeof_hdr: cls for cls in (nib.Nifti1Image, nib.Nifti2Image)}
_EXTENSION_FLAG = 4  # bytes after the header that say whether extensions follow
_GZIP_MIN = 18  # a gzip member's 10-byte header and 8-byte trailer

#: NIfTI time units -> seconds
_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
#: a frame interval in the header outside this range (s) is not trusted
_DT_RANGE = (0.1, 10.0)


def is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def is_gzip_name(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


@contextlib.contextmanager
def _stream(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """The file's (decompressed) content as a stream, and its size on disk; every read error
    inside the block becomes a DataError naming the file."""
    try:
        with open_regular(path, "NIfTI file") as f:
            size = os.fstat(f.fileno()).st_size
            if is_gzip_name(path):
                with gzip.GzipFile(fileobj=f, mode="rb") as z:
                    yield z, size
            else:
                yield f, size
    except gzip.BadGzipFile as exc:  # CRC or length trailer wrong, or no gzip at all
        raise DataError(path, f"corrupt gzip data ({exc})") from exc
    except zlib.error as exc:
        raise DataError(path, f"corrupt gzip data ({exc})") from exc
    except EOFError as exc:
        raise DataError(path, "truncated or corrupt gzip data (the stream ends early)") from exc
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror or exc})") from exc


def _read_header(path: Path, stream: BinaryIO) -> tuple[type[nib.Nifti1Image], bytes]:
    """The image class and the bytes up to the data offset (header and extensions)."""
    head = stream.read(min(_IMAGE_CLASSES))
    if not head:
        raise DataError(path, "empty file (0 bytes)")
    sizes = {int.from_bytes(head[:4], order) for order in ("little", "big")}
    cls = next((_IMAGE_CLASSES[n] for n in sizes if n in _IMAGE_CLASSES), None)
    if cls is None:
        raise DataError(path, "not a NIfTI file (no NIfTI-1/2 header)")
    header_size = cls.header_class.sizeof_hdr
    head += stream.read(header_size + _EXTENSION_FLAG - len(head))
    if len(head) < header_size:
        raise DataError(path, f"truncated: {len(head)} bytes, a NIfTI header takes {header_size}")
    try:
        raw = cls.header_class(head[:header_size], check=False)
        magic = raw["magic"].item()
        if magic not in (b"n+1", b"n+2"):
            raise DataError(path, f"not a single-file NIfTI (magic {magic!r})")
        _check_shape(path, raw.get_data_shape())
        _check_spacing(path, raw)
        header = cls.header_class(head[:header_size], check=True)
    except HeaderDataError as exc:
        raise DataError(path, f"corrupt header ({exc})") from exc
    offset = int(header.get_data_offset())
    low = cls.header_class.single_vox_offset
    if not low <= offset <= MAX_HEADER_BYTES:
        raise DataError(
            path,
            f"corrupt header: vox_offset {offset}, the data must start at byte {low} to "
            f"{MAX_HEADER_BYTES}",
        )
    head += stream.read(offset - len(head))
    if len(head) < offset:
        raise DataError(path, f"truncated: the file ends inside its header ({offset} bytes)")
    return cls, head


def open_image(path: str | Path) -> nib.Nifti1Image:
    """A NIfTI file's header as an image (no voxel read), checked against the limits."""
    path = Path(path)
    with _stream(path) as (stream, size):
        cls, head = _read_header(path, stream)
    try:
        # from the header bytes only: nibabel cannot read beyond them
        img = cls.from_stream(io.BytesIO(head))
    except HeaderDataError as exc:
        raise DataError(path, f"corrupt header ({exc})") from exc
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot be read as NIfTI ({exc})") from exc
    _check_header(path, img, size)
    return img


def _check_shape(path: Path, shape: tuple[int, ...]) -> None:
    if len(shape) < 3:
        raise DataError(path, f"has {len(shape)} dimensions {shape}; a volume needs 3")
    if len(shape) > 4:
        raise DataError(path, f"has {len(shape)} dimensions {shape}; at most 4 are read")
    if any(n <= 0 for n in shape):
        raise DataError(path, f"has zero voxels along an axis (shape {shape}, zero slices?)")
    beyond = check_shape(shape)
    if beyond is not None:
        raise DataError(path, f"absurd header size {shape}: {beyond}; corrupt header?")


def _check_spacing(path: Path, raw: nib.Nifti1Header) -> None:
    """The stored voxel spacing (``pixdim[1:4]``), before nibabel's check sets a zero to 1 mm and
    a negative one to its absolute value: both would make every volume silently wrong."""
    spacing = [float(v) for v in raw["pixdim"][1:4]]
    if not all(math.isfinite(v) and v > 0 for v in spacing):
        shown = ", ".join(f"{v:g}" for v in spacing)  # float32: 0.9, not 0.8999999761581421
        raise DataError(
            path,
            f"invalid voxel spacing ({shown}) (pixdim[1:4]) in the header: each must be "
            "positive, or volumes would be wrong",
        )


def _check_header(path: Path, img: nib.Nifti1Image, size: int) -> None:
    dtype = img.get_data_dtype()
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise DataError(path, f"unsupported voxel type {dtype} (expected integers or floats)")
    if not np.all(np.isfinite(img.affine)):
        raise DataError(path, "non-finite values in the affine")
    if not is_gzip_name(path):
        expected = _data_offset(img) + _data_bytes(img)
        if size < expected:
            raise DataError(path, f"truncated: {size} bytes, the header needs {expected}")


def _data_offset(img: nib.Nifti1Image) -> int:
    return int(img.dataobj.offset)  # the image's own header copy has vox_offset reset to 0


def _data_bytes(img: nib.Nifti1Image) -> int:
    return math.prod(img.shape) * img.get_data_dtype().itemsize


def declared_size(img: nib.Nifti1Image) -> int:
    """Bytes an opened image's (uncompressed) file holds by its header: header, extensions and
    voxels."""
    return _data_offset(img) + _data_bytes(img)


def gzip_trailer_size(path: str | Path) -> int:
    """The ISIZE field of a gzip file's trailer (its last 4 bytes): the uncompressed size of its
    last member mod 2**32. Read without decompressing, so a truncated ``.nii.gz`` is found from
    its header and last bytes alone (its "trailer" is then deflate data, almost never the size)."""
    path = Path(path)
    try:
        with open_regular(path, "NIfTI file") as f:
            if os.fstat(f.fileno()).st_size < _GZIP_MIN:
                raise DataError(path, "truncated: too short for gzip data")
            f.seek(-4, os.SEEK_END)
            return int.from_bytes(f.read(4), "little")
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror or exc})") from exc


def spatial_shape(img: nib.Nifti1Image) -> tuple[int, int, int]:
    """``(z, y, x)`` shape of an image, without reading voxels."""
    i, j, k = img.shape[:3]
    return (k, j, i)


def spacing_zyx(img: nib.Nifti1Image) -> tuple[float, float, float]:
    sx, sy, sz = (float(v) for v in img.header.get_zooms()[:3])
    return (sz, sy, sx)


def read_voxels(path: Path, img: nib.Nifti1Image, dtype=np.float32) -> np.ndarray:
    """All voxels of an opened image, scaled, as ``dtype`` (None: as stored, scaled as nibabel
    does), axes reversed (``(z, y, x)`` / ``(t, z, y, x)``). Non-finite values are left to the
    caller, who decides what they mean."""
    n = _data_bytes(img)
    with _stream(path) as (stream, _):
        stream.seek(_data_offset(img))  # a gzip stream decompresses up to there, in chunks
        buf = np.empty(n, np.uint8)  # the declared size, checked in open_image
        view, got = memoryview(buf), 0
        while got < n and (k := stream.readinto(view[got:])):
            got += k
        if got < n:
            raise DataError(path, f"truncated or corrupt: {got} bytes of voxel data, not {n}")
        if is_gzip_name(path) and stream.read(1):  # to the trailer: gzip checks CRC and length
            raise DataError(
                path, f"corrupt gzip data: more than the {n} bytes of voxels its header declares"
            )
    # NIfTI data is Fortran-ordered on disk, so reversing the axes is a C-contiguous view.
    raw = buf.view(img.get_data_dtype()).reshape(img.shape, order="F").T
    slope, inter = img.dataobj.slope, img.dataobj.inter  # the header's copy is reset to NaN
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is Inf, for callers to find
        if dtype is not None and np.dtype(dtype).kind == "f":
            out = raw.astype(dtype)
            if (slope, inter) != (1.0, 0.0):
                out *= slope
                out += inter
            return out
        data = apply_read_scaling(raw, slope, inter)
        return data.astype(dtype or data.dtype.newbyteorder("="), copy=False)


def open_volume(path: str | Path) -> nib.Nifti1Image:
    """The header of a 3D volume (``open_image``); a 4D file with one frame counts as 3D."""
    path = Path(path)
    img = open_image(path)
    if len(img.shape) == 4 and img.shape[3] != 1:
        raise DataError(path, f"is 4D (shape {img.shape}) where a 3D volume is expected")
    return img


def load_volume(path: str | Path, dtype=np.float32) -> tuple[np.ndarray, nib.Nifti1Image]:
    """A 3D volume as ``(z, y, x)`` (see ``open_volume``)."""
    path = Path(path)
    img = open_volume(path)
    data = read_voxels(path, img, dtype)
    if data.ndim == 4:
        data = data[0]
    return data, img


def open_series(path: str | Path) -> nib.Nifti1Image:
    """The header of a 4D perfusion source (``open_image``), refused unless it is 4D."""
    path = Path(path)
    img = open_image(path)
    if len(img.shape) != 4:
        raise DataError(path, f"the perfusion source must be 4D, found shape {img.shape}")
    return img


def load_series(path: str | Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """A 4D perfusion source as float32 ``(t, z, y, x)``, refused when it holds NaN/Inf.

    Not set to 0 as in a map: a 0 HU frame in a time curve is a false bolus or dip, which the AIF
    search and the deconvolution turn into absurd maps (an AIF peak of 2469 HU was seen).
    """
    path = Path(path)
    img = open_series(path)
    series = read_voxels(path, img)
    if not np.isfinite(series).all():
        n = series.size - int(np.count_nonzero(np.isfinite(series)))
        raise DataError(
            path, f"{n} non-finite voxels (NaN/Inf) in the 4D source; its maps would be absurd"
        )
    return series, img


def frame_interval(img) -> float | None:
    """Seconds between frames from a 4D NIfTI header, or None when absent or implausible."""
    zooms = img.header.get_zooms()
    unit = _TIME_UNITS.get(img.header.get_xyzt_units()[1], 1.0)
    dt = float(zooms[3]) * unit if len(zooms) > 3 else 0.0
    return dt if _DT_RANGE[0] <= dt <= _DT_RANGE[1] else None
