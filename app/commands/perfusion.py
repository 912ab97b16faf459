"""``strokelens perfusion PATH``: CBF/CBV/MTT/Tmax maps from the 4D CT-perfusion source.

Every case under PATH that has a 4D source (ISLES ``CT_4DPWI`` or simple-layout ``4dpwi``) gets a
folder ``<out>/<case key>/`` holding ``ct`` (the pre-bolus baseline), ``cbf``, ``cbv``, ``mtt``,
``tmax`` (``.nii.gz``, float32, the source's geometry), ``mask`` when the case has a ground truth,
and ``perfusion.json`` (frame interval, AIF voxels and curve). ``<out>`` is then a simple-layout
data set that every other command reads. The default ``<out>`` is ``<PATH>-maps`` beside PATH,
so source data are never written into.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from strokelens.app.commands import checked_number, folder
from strokelens.core.perfusion.analysis import MAX_SMOOTH_MM, check_smooth_mm, compute_maps
from strokelens.core.perfusion.deconvolution import check_dt, check_threshold

HELP = "compute CBF, CBV, MTT and Tmax maps from the 4D perfusion source of a data set or case"

MAP_FILES = ("ct", "cbf", "cbv", "mtt", "tmax")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="data set root, split folder or case folder")
    parser.add_argument("--out", type=folder, help="output folder (default: <PATH>-maps)")
    parser.add_argument(
        "--dt",
        type=checked_number(check_dt),
        help="frame interval in s (default: from the 4D header, else 1 s)",
    )
    parser.add_argument(
        "--smooth-mm",
        type=checked_number(check_smooth_mm),
        default=2.0,
        help=f"in-plane Gaussian sigma in mm, 0 to {MAX_SMOOTH_MM:g} (default 2)",
    )
    parser.add_argument(
        "--bsvd",
        type=checked_number(check_threshold),
        metavar="THRESHOLD",
        help="fixed-threshold bSVD (fraction of the largest singular value, in (0, 1)) instead "
        "of oSVD",
    )
    parser.add_argument("--force", action="store_true", help="recompute cases already written")


def process_case(ref, out_dir: Path, args: argparse.Namespace) -> str:
    """Compute and write one case's maps; returns a one-line summary."""
    import numpy as np

    from strokelens.core.errors import DataError
    from strokelens.core.nifti import frame_interval, load_series, load_volume, spacing_zyx
    from strokelens.core.writer import atomic_save, atomic_write_bytes, volume_image

    path = ref.files["4DPWI"]
    series, img = load_series(path)
    dt = args.dt or frame_interval(img) or 1.0
    start = time.perf_counter()
    try:
        maps = compute_maps(
            series,
            dt=dt,
            spacing=spacing_zyx(img),
            smooth_mm=args.smooth_mm,
            svd_threshold=args.bsvd or 0.1,
            oi_target=None if args.bsvd else 0.095,
        )
    except ValueError as exc:
        raise DataError(path, str(exc)) from exc
    seconds = time.perf_counter() - start
    header = img.header
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MAP_FILES:
        data = maps.baseline if name == "ct" else getattr(maps, name)
        atomic_save(volume_image(data, img.affine, header, np.float32), out_dir / f"{name}.nii.gz")
    if "OT" in ref.files:
        truth, _ = load_volume(ref.files["OT"], dtype=np.uint8)
        if truth.shape != maps.cbf.shape:
            raise DataError(ref.files["OT"], f"shape {truth.shape} differs from {path.name}")
        atomic_save(volume_image(truth, img.affine, header, np.uint8), out_dir / "mask.nii.gz")
    info = {
        "source": str(path),
        "dt_s": dt,
        "frames": int(series.shape[0]),
        "smooth_mm": args.smooth_mm,
        "deconvolution": f"bSVD {args.bsvd}" if args.bsvd else "oSVD (oscillation index 0.095)",
        "brain_voxels": int(maps.brain_mask.sum()),
        "aif_voxels_zyx": maps.aif_voxels.tolist(),
        "aif_hu": [round(float(v), 2) for v in maps.aif],
        "vof_found": maps.vof is not None,
    }
    atomic_write_bytes(out_dir / "perfusion.json", json.dumps(info, indent=1).encode())
    return (
        f"{ref.key}: {series.shape[0]} frames x {series.shape[1]} slices, dt {dt:g} s, "
        f"{info['brain_voxels']} brain voxels, AIF peak {maps.aif.max():.0f} HU, "
        f"{seconds:.1f} s -> {out_dir}"
    )


def run(args: argparse.Namespace) -> int:
    from strokelens.core.dataset import open_dataset
    from strokelens.core.errors import DataError
    from strokelens.core.output import prepare_folders, write_error
    from strokelens.core.safepath import check_name, path_inside

    root = Path(args.path)
    dataset = open_dataset(root)
    out = args.out or root.resolve().with_name(root.resolve().name + "-maps")
    sources = [ref for ref in dataset if "4DPWI" in ref.files]
    if not sources:
        print(
            f"strokelens perfusion: error: {root}: no case has a 4D perfusion source (CT_4DPWI)",
            file=sys.stderr,
        )
        return 1
    failed = present = 0
    with prepare_folders(
        [out], dataset_root=dataset.root
    ):  # a file, read-only or full: one line before any case is done
        for ref in sources:
            try:
                check_name(ref.id, "case folder name", ref.folder)
                case_out = path_inside(out, *([ref.split] if ref.split else []), ref.id)
                if not args.force and all((case_out / f"{n}.nii.gz").exists() for n in MAP_FILES):
                    present += 1
                    print(f"{ref.key}: already in {case_out} (--force recomputes)")
                    continue
                print(process_case(ref, case_out, args), flush=True)
            except DataError as exc:
                failed += 1
                print(f"{ref.key}: error: {exc}", file=sys.stderr, flush=True)
            except OSError as exc:  # the disk filled up, a case's folder is a file
                raise write_error(exc, out) from exc
    skipped = len(dataset) - len(sources)
    print(
        f"{len(sources) - failed - present} of {len(sources)} cases computed"
        + (f", {present} already there" if present else "")
        + (f", {failed} failed" if failed else "")
        + (f"; {skipped} without a 4D source skipped" if skipped else "")
    )
    return 1 if failed else 0
