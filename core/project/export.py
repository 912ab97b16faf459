"""Exporting a project's corrections: the masks under ISLES submission names, two CSVs, a manifest.

In ``out``:

- each mask as ``SMIR.<method>.<id>.nii`` (``<case>_mask.nii.gz`` without a CT_MTT folder
  number; in a folder per split when case names repeat across splits), uint8 with the geometry
  it was saved with (the source's affine and header);
- ``cases.csv``, one row per case: status, reviewer, times, what the correction started from,
  the core volume (the correction) and the hypoperfusion volume (``Tmax > 6 s`` in the brain,
  ``core.mismatch.hypoperfusion_mask``), input problems;
- ``metrics.csv``, one row per case, cached ensemble and source (all / focal / ce): the ISLES
  metrics of that ensemble's mask against the correction (``core.metrics.case_metrics``), for
  every complete prediction of the case in the prediction cache; no row where none is cached;
- ``manifest.json``: the files and the sha256 of each mask (of its voxels and of the file).

Empty cells: a value that does not exist (no Tmax readable, HD of an empty mask: NaN).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field

from strokelens.core import schema
from strokelens.core.case import Case
from strokelens.core.dataset import Dataset, open_dataset
from strokelens.core.errors import DataError, OutputError
from strokelens.core.metrics import METRICS, case_metrics, volume_ml
from strokelens.core.mismatch import hypoperfusion_mask
from strokelens.core.nifti import load_volume
from strokelens.core.output import prepare_folders
from strokelens.core.prediction_store import PredictionCache, default_cache_root
from strokelens.core.project.inputs import file_sha256
from strokelens.core.project.review import Status
from strokelens.core.safepath import path_inside
from strokelens.core.writer import atomic_save, atomic_write_bytes, mask_file_name, volume_image

if TYPE_CHECKING:
    from strokelens.core.project.store import CaseRecord, ProjectStore

FORMAT = "strokelens-export"
VERSION = 1
MANIFEST = "manifest.json"
CASES_CSV = "cases.csv"
METRICS_CSV = "metrics.csv"
CASE_COLUMNS = (
    "case",
    "file",
    "status",
    "reviewer",
    "created",
    "updated",
    "started_from",
    "core_ml",
    "hypoperfusion_ml",
    "mask_sha256",
    "input_problems",
    "problem",
)
METRIC_COLUMNS = ("case", "ensemble", "source", "volume_ml", *METRICS)
#: How the prediction cache names an ensemble's folder (``prediction_store.manifest_fingerprint``).
_ENSEMBLE = re.compile(r"[0-9a-f]{16}", re.ASCII)
_SHA = Annotated[schema.Str, Field(pattern=r"^[0-9a-f]{64}$")]


class ManifestCase(BaseModel):
    model_config = schema.STRICT
    case: schema.Str
    status: Literal[tuple(str(s) for s in Status)]
    file: schema.Str  # relative to the export folder
    voxel_sha256: _SHA  # of the voxels, as the project records it
    file_sha256: _SHA  # of the exported file (check with sha256sum)
    volume_ml: schema.Finite


class ExportManifest(BaseModel):
    """``manifest.json`` of an export."""

    model_config = schema.STRICT
    format: Literal[FORMAT]
    version: schema.version(VERSION)
    project: schema.Str
    dataset_root: schema.Str
    statuses: list[schema.Str]
    cases: list[ManifestCase]
    notes: list[schema.Str]


def read_manifest(path: str | Path) -> ExportManifest:
    """An export's manifest, validated (DataError naming the file and the field otherwise)."""
    return schema.load(path, ExportManifest, "export manifest")


@dataclass
class ExportResult:
    out: Path
    masks: dict[str, Path]  # case key -> exported mask
    cases_csv: Path
    metrics_csv: Path
    manifest: Path
    skipped: dict[str, str] = field(default_factory=dict)  # case key -> why its mask is not there
    notes: list[str] = field(default_factory=list)


def _cell(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _csv(columns: tuple[str, ...], rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue().encode()


def _case_id(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _names(records: list[CaseRecord], method: str) -> dict[str, tuple[str, ...]]:
    """Each case's file as path parts under ``out``: a folder per split if names repeat."""
    names = {r.key: mask_file_name(_case_id(r.key), r.submission_id, method) for r in records}
    repeated = any(n > 1 for n in Counter(names.values()).values())
    return {
        k: (k.rsplit("/", 1)[0], name) if repeated and "/" in k else (name,)
        for k, name in names.items()
    }


def _ensembles(cache_root: Path) -> list[str]:
    if not cache_root.is_dir():
        return []
    return sorted(
        p.name for p in cache_root.iterdir() if p.is_dir() and _ENSEMBLE.fullmatch(p.name)
    )


def _metric_rows(
    case: Case, mask: np.ndarray, cache: PredictionCache, ensembles: list[str]
) -> list[dict]:
    rows = []
    for ensemble in ensembles:
        try:
            prediction = cache.get(ensemble, case)
        except (OSError, ValueError):  # an input file gone: nothing can match it
            prediction = None
        if prediction is None:
            continue
        for source in prediction.sources:
            predicted = prediction.mask(source)
            rows.append(
                {
                    "case": case.key,
                    "ensemble": ensemble,
                    "source": source,
                    "volume_ml": volume_ml(predicted, case.spacing),
                    **case_metrics(predicted, mask, case.spacing),
                }
            )
    return rows


def export(
    store: ProjectStore,
    out: Path,
    statuses: tuple[Status, ...] | list[Status],
    method: str = "strokelens",
    cache_root: Path | None = None,
    dataset: Dataset | None = None,
) -> ExportResult:
    """Export the masks of the cases in ``statuses`` (see the module docstring). A case whose
    mask cannot be read is listed in ``skipped`` (and in ``cases.csv``) and the rest go on; a
    case whose inputs cannot be loaded gets its mask but no hypoperfusion volume or metrics."""
    statuses = [Status(s) for s in statuses]
    out = Path(out)
    if out.resolve().is_relative_to(store.dataset_root.resolve()):
        raise OutputError(out, f"an export cannot go inside the data set {store.dataset_root}")
    records = [r for r in store.cases() if r.status in statuses and r.mask_file is not None]
    names = _names(records, method)
    folders = sorted({out.joinpath(*parts[:-1]) for parts in names.values()})
    prepare_folders([out, *[f for f in folders if f != out]])
    cache = PredictionCache(cache_root or default_cache_root())
    ensembles = _ensembles(cache.root)
    input_problems: dict[str, list[str]] = {}
    for p in store.check_inputs(r.key for r in records):
        input_problems.setdefault(p.case_key, []).append(f"{p.file}: {p.problem}")
    if dataset is None and records:
        try:
            dataset = open_dataset(store.dataset_root)
        except DataError:
            dataset = None

    result = ExportResult(out, {}, out / CASES_CSV, out / METRICS_CSV, out / MANIFEST)
    case_rows, metric_rows, listed = [], [], []
    for record in records:
        parts = names[record.key]
        row = {
            "case": record.key,
            "file": "/".join(parts),
            "status": record.status,
            "reviewer": record.reviewer,
            "created": record.created,
            "updated": record.updated,
            "started_from": record.started_from,
            "core_ml": record.mask_ml,
            "hypoperfusion_ml": None,
            "mask_sha256": record.mask_sha256,
            "input_problems": "; ".join(input_problems.get(record.key, [])),
            "problem": "",
        }
        case_rows.append(row)
        try:
            mask = store.load_mask(record.key)
            _, img = load_volume(store.mask_path(record), dtype=None)
            path = path_inside(out, *parts)
            atomic_save(volume_image(mask, img.affine, img.header, np.uint8), path)
        except DataError as exc:
            row["file"], row["problem"] = "", str(exc)
            result.skipped[record.key] = str(exc)
            continue
        result.masks[record.key] = path
        listed.append(
            {
                "case": record.key,
                "status": str(record.status),
                "file": row["file"],
                "voxel_sha256": record.mask_sha256,
                "file_sha256": file_sha256(path),
                "volume_ml": record.mask_ml,
            }
        )
        if record.key in input_problems:
            row["problem"] = "inputs changed or missing: no hypoperfusion volume or metrics"
            continue
        if dataset is None:
            row["problem"] = "the data set cannot be opened: no hypoperfusion volume or metrics"
            continue
        try:
            case = dataset.load(record.key)
        except (DataError, KeyError) as exc:
            row["problem"] = f"inputs cannot be loaded ({exc}): no hypoperfusion volume or metrics"
            continue
        scale = np.float32(case.value_scales.get("Tmax", 1.0))
        hypo = hypoperfusion_mask(case.channels["Tmax"] * scale, case.channels["CT"])
        row["hypoperfusion_ml"] = volume_ml(hypo, case.spacing)
        metric_rows += _metric_rows(case, mask, cache, ensembles)

    if not ensembles:
        result.notes.append(f"no cached predictions in {cache.root}: metrics.csv has no rows")
    elif records and not metric_rows:
        result.notes.append(
            "no exported case has a complete cached prediction: metrics.csv is empty"
        )
    atomic_write_bytes(result.cases_csv, _csv(CASE_COLUMNS, case_rows))
    atomic_write_bytes(result.metrics_csv, _csv(METRIC_COLUMNS, metric_rows))
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "project": str(store.path.resolve()),
        "dataset_root": str(store.dataset_root),
        "statuses": [str(s) for s in statuses],
        "cases": listed,
        "notes": result.notes,
    }
    atomic_write_bytes(result.manifest, json.dumps(manifest, indent=2).encode())
    return result
