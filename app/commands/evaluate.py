"""``strokelens evaluate PRED_DIR DATA_DIR``: ISLES 2018 metrics of saved masks against the truth.

Prediction files are matched to cases by submission id (``SMIR.<method>.<id>.nii[.gz]``, the
CT_MTT folder number) or by case name (``<case>_mask.nii[.gz]``); where several files match, the
one in a folder named after the case's split wins. Prints per-case DSC, HD, ASSD, precision,
recall and AVD with their mean +- sd (as the challenge reported them) and writes
``evaluation.csv`` / ``evaluation.json`` into PRED_DIR (or ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from strokelens.app.commands import folder
from strokelens.core.dataset import CaseRef, open_dataset
from strokelens.core.errors import DataError
from strokelens.core.metrics import METRICS, case_metrics, summarize, volume_ml
from strokelens.core.nifti import is_nifti_name, load_volume, spacing_zyx
from strokelens.core.output import prepare_folders
from strokelens.core.writer import atomic_write_bytes

HELP = "score saved masks against a data set's ground truth (ISLES 2018 metrics, mean +- sd)"

#: Column titles of the metrics in printed tables.
TITLES = {
    "dsc": "DSC",
    "hd": "HD mm",
    "assd": "ASSD mm",
    "precision": "Prec",
    "recall": "Recall",
    "avd_ml": "AVD mL",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred_dir", help="folder of predicted masks (searched recursively)")
    parser.add_argument("data_dir", help="data set, split or case folder with ground truth")
    parser.add_argument("--method", help="only files SMIR.<METHOD>.<id>.nii (when several)")
    parser.add_argument(
        "--out", type=folder, help="folder for evaluation.csv / evaluation.json (default PRED_DIR)"
    )


def _fmt(value: float) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.3f}"


def format_table(
    rows: Sequence[Mapping[str, float]],
    summary: Mapping[str, Mapping[str, float]],
    names: Sequence[str],
    keys: Sequence[str],
) -> str:
    """A text table: one line per case (``names``) and a ``mean +- sd`` line."""
    width = max([len(n) for n in names] + [4])
    lines = [f"{'case':<{width}}  " + "  ".join(f"{TITLES[k]:>15}" for k in keys)]
    for name, row in zip(names, rows, strict=True):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{_fmt(row[k]):>15}" for k in keys))
    stats = [f"{_fmt(summary[k]['mean'])} +- {_fmt(summary[k]['sd'])}" for k in keys]
    lines.append(f"{'mean':<{width}}  " + "  ".join(f"{s:>15}" for s in stats))
    return "\n".join(lines)


def write_csv(rows: Sequence[Mapping[str, object]], path: Path) -> Path:
    """Rows (one dict per case) as CSV, written atomically; a key a row lacks stays empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    # a name that is not UTF-8 (a file name's undecodable bytes, as os.fsdecode gives them)
    # is written back as its bytes, as it is on disk
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8", "surrogateescape"))


def write_json(data: object, path: Path) -> Path:
    """JSON with NaN written as null (strict JSON readers reject NaN); a name that is not UTF-8
    keeps its undecodable bytes as escaped surrogates (``"\\udcff"`` for the byte 0xff), which
    ``json.loads`` and ``os.fsencode`` turn back into the bytes on disk."""

    def clean(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return atomic_write_bytes(path, (json.dumps(clean(data), indent=2) + "\n").encode())


def _candidates(ref: CaseRef, files: list[Path], method: str | None) -> list[Path]:
    names = {f"{ref.id}_mask.nii", f"{ref.id}_mask.nii.gz"}
    pattern = None
    if ref.submission_id:
        token = re.escape(method) if method else r"[^.]+"
        pattern = re.compile(rf"SMIR\.{token}\.{re.escape(ref.submission_id)}\.nii(\.gz)?")
    found = [p for p in files if p.name in names or (pattern and pattern.fullmatch(p.name))]
    in_split = [p for p in found if ref.split and p.parent.name.lower() == ref.split]
    return in_split or found


def match_predictions(
    refs: Sequence[CaseRef], pred_dir: Path, method: str | None = None
) -> dict[str, Path | None]:
    """Case key -> its prediction file (None when there is none)."""
    files = sorted(p for p in pred_dir.rglob("*") if p.is_file() and is_nifti_name(p))
    matches: dict[str, Path | None] = {}
    for ref in refs:
        found = _candidates(ref, files, method)
        if len(found) > 1:
            shown = ", ".join(str(p.relative_to(pred_dir)) for p in found)
            raise DataError(pred_dir, f"several predictions for {ref.key}: {shown} (use --method)")
        matches[ref.key] = found[0] if found else None
    return matches


def score_file(ref: CaseRef, pred_path: Path) -> dict[str, float]:
    """ISLES metrics and volumes of one prediction file against the case's ground truth."""
    truth, truth_img = load_volume(ref.files["OT"], dtype=None)
    pred, _ = load_volume(pred_path, dtype=None)
    if pred.shape != truth.shape:
        raise DataError(pred_path, f"shape {pred.shape} (z, y, x), {ref.key} has {truth.shape}")
    if not np.isin(pred, (0, 1)).all():
        raise DataError(pred_path, "not a binary mask (values other than 0 and 1)")
    spacing = spacing_zyx(truth_img)
    row = case_metrics(pred, truth, spacing)
    return {**row, "pred_ml": volume_ml(pred, spacing), "truth_ml": volume_ml(truth, spacing)}


def run(args: argparse.Namespace) -> int:
    pred_dir = Path(args.pred_dir)
    if not pred_dir.is_dir():
        raise DataError(pred_dir, "no such folder of predictions")
    refs = [r for r in open_dataset(args.data_dir) if r.has_truth]
    if not refs:
        raise DataError(Path(args.data_dir), "no case with a ground truth (OT) to evaluate")
    out = Path(args.out) if args.out else pred_dir
    # checked and locked first: a predict still writing into PRED_DIR holds its lock
    with prepare_folders([out]):
        matches = match_predictions(refs, pred_dir, args.method)
        missing = [key for key, path in matches.items() if path is None]
        rows = []
        for ref in refs:
            path = matches[ref.key]
            if path is not None:
                row = {"key": ref.key, "file": str(path.relative_to(pred_dir))}
                rows.append(row | score_file(ref, path))
        if not rows:
            raise DataError(pred_dir, f"no prediction matches any of the {len(refs)} cases")
        summary = summarize(rows, METRICS)
        print(format_table(rows, summary, [r["key"] for r in rows], METRICS))
        for key in missing:
            print(f"warning: no prediction for {key}", file=sys.stderr)
        write_csv(rows, out / "evaluation.csv")
        write_json({"cases": rows, "summary": summary, "missing": missing}, out / "evaluation.json")
        print(f"{len(rows)} cases scored, {len(missing)} without prediction; tables in {out}")
    return 0
