"""``strokelens summary CASE|DATA --out DIR [--ensemble M] [--project P]``: stroke reports.

Per case, in DIR: ``<case>_summary.pdf`` and ``.png`` (one page, ``core.stroke_report``; a folder
per split when case names repeat across splits), and ``summary.csv`` with every case's numbers
(``StrokeSummary.row``), rewritten after each case.

The AI core of a case: with ``--project``, its saved correction (corrected or approved; read
only, checked against its recorded sha256; not used, with a warning, when the case's input
files changed since it was saved); else the ensemble's prediction from the prediction cache, or
a fresh run of the ensemble (``--ensemble``, else the bundled demo ensemble), kept in the
cache; else none: "no core", no verdict. The ground truth is never the AI core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from strokelens.app.commands import add_allow_external_members, folder
from strokelens.app.commands.evaluate import write_csv
from strokelens.app.commands.predict import manifest_path
from strokelens.core.dataset import Dataset, open_dataset
from strokelens.core.errors import DataError
from strokelens.core.output import prepare_folders, write_error
from strokelens.core.safepath import check_name, path_inside

HELP = "write a one-page stroke report (PDF, PNG) per case and a CSV of the numbers"
CSV_NAME = "summary.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="case folder, split folder or data set root")
    parser.add_argument("--out", type=folder, required=True, help="output folder")
    parser.add_argument("--ensemble", help="ensemble manifest (default: the bundled demo one)")
    add_allow_external_members(parser)
    parser.add_argument("--project", type=folder, help="review project with corrected masks")


def _report_paths(out: Path, dataset: Dataset, per_split: bool) -> dict[str, tuple[Path, Path]]:
    """Each case's PDF and PNG, made with ``path_inside`` (a bad name fails before any work)."""
    paths = {}
    for ref in dataset:
        check_name(ref.id, "case folder name", ref.folder)
        sub = [ref.split] if per_split and ref.split else []
        paths[ref.key] = tuple(
            path_inside(out, *sub, f"{ref.id}_summary.{ext}") for ext in ("pdf", "png")
        )
    return paths


def run(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.input)
    out = Path(args.out)
    ids = [ref.id for ref in dataset]
    per_split = len(set(ids)) < len(ids)
    paths = _report_paths(out, dataset, per_split)
    folders = [out, *sorted({p.parent for pair in paths.values() for p in pair} - {out})]
    with prepare_folders(folders, dataset_root=dataset.root) as stale:
        for path in stale:
            print(f"removed {path}: a temporary file left by an interrupted run", file=sys.stderr)
        return _summarize(args, dataset, out, paths)


class _Ensemble:
    """The manifest, cache and (on first need) engine that give a case's AI core."""

    def __init__(self, args: argparse.Namespace):
        from strokelens.core.manifest import read_manifest
        from strokelens.core.prediction_store import (
            PredictionCache,
            default_cache_root,
            manifest_fingerprint,
        )

        self.manifest = None
        try:
            path = manifest_path(args.ensemble)
        except DataError:  # no --ensemble and no demo ensemble: no AI core
            return
        self.manifest = read_manifest(path, args.allow_external_members)
        self.fingerprint = manifest_fingerprint(self.manifest)
        self.cache = PredictionCache(default_cache_root())
        self.engine = None

    def origin(self):
        from strokelens.core.stroke_summary import CoreKind, CoreOrigin

        return CoreOrigin(
            CoreKind.ENSEMBLE,
            ensemble=self.manifest.name,
            fingerprint=self.fingerprint,
            members=len(self.manifest.members),
        )

    def predict(self, case):
        """The case's complete prediction: cached, else run now and cached."""
        from strokelens.core.engine import Engine

        prediction = self.cache.get(self.fingerprint, case)
        if prediction is None:
            if self.engine is None:
                self.engine = Engine(self.manifest, device="auto")
            prediction = self.engine.predict(case)
            try:
                self.cache.put(self.fingerprint, case, prediction)
            except OSError as exc:  # an unwritable cache costs the next run, not this one
                print(f"{case.key}: warning: prediction not cached ({exc})", file=sys.stderr)
        return prediction


def _correction(store, case):
    """The project's saved mask of ``case`` and its origin, or None (with a warning why)."""
    from strokelens.core.stroke_summary import correction_origin

    record = store.record(case.key)
    if record is None or record.mask_file is None:
        return None
    changed = store.check_inputs([case.key])
    if changed:
        why = "; ".join(f"{p.file}: {p.problem}" for p in changed)
        print(f"{case.key}: warning: correction not used, inputs changed ({why})", file=sys.stderr)
        return None
    mask = store.load_mask(case.key)
    if mask.shape != case.shape:
        raise DataError(store.mask_path(record), f"is {mask.shape}, case {case.key} {case.shape}")
    return mask, correction_origin(record, store.audit(case.key))


def _open_project(path: Path, dataset: Dataset):
    from strokelens.core.project.store import ProjectStore

    store = ProjectStore.open(path, writable=False)
    root = store.dataset_root.resolve()
    outside = [r.key for r in dataset if not r.folder.resolve().is_relative_to(root)]
    if outside:
        store.close()
        raise DataError(path, f"is a project of {root}, which does not hold {outside[0]}")
    return store


def _summarize(args, dataset: Dataset, out: Path, paths) -> int:
    from strokelens.core.stroke_report import write_report
    from strokelens.core.stroke_summary import CoreKind, CoreOrigin, summarize_stroke

    ensemble = _Ensemble(args)
    store = _open_project(args.project, dataset) if args.project else None
    rows, failed = [], 0
    try:
        for ref in dataset:
            start = time.perf_counter()
            try:
                case = dataset.load(ref)
            except DataError as exc:
                failed += 1
                print(f"{ref.key}: skipped: {exc}", file=sys.stderr)
                continue
            for problem in case.problems:
                print(f"{ref.key}: warning: {problem}", file=sys.stderr)
            corrected = None if store is None else _correction(store, case)
            prediction = None if ensemble.manifest is None else ensemble.predict(case)
            if corrected is not None:
                mask, origin = corrected
            else:
                mask = None
                origin = ensemble.origin() if prediction else CoreOrigin(CoreKind.NONE)
            summary = summarize_stroke(case, prediction, mask, origin)
            try:
                write_report(summary, *paths[ref.key])
                rows.append(summary.row())
                write_csv(rows, out / CSV_NAME)
            except OSError as exc:
                raise write_error(exc, out) from exc
            print(
                f"{ref.key}: core {summary.origin.kind}, {summary.verdict_words} "
                f"({time.perf_counter() - start:.1f} s)"
            )
    finally:
        if store is not None:
            store.close()
    print(f"{len(rows)} reports written, {failed} failed; results in {out}")
    return 1 if failed else 0
