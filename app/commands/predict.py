"""``strokelens predict INPUT|--demo --out DIR [--ensemble MANIFEST]``: segment cases.

Per case, in DIR: the final mask (all-member mean >= 0.5), named as an ISLES 2018 submission
``SMIR.<method>.<id>.nii`` when the case has a CT_MTT folder number, else ``<case>_mask.nii.gz``;
in ``DIR/maps/`` the mean probability maps (all members, focal members, cross-entropy members),
the member std (uncertainty) and with ``--members`` each member's probabilities. When case names
repeat across splits (ISLES' TRAINING and TESTING both hold case_1), each split gets a folder.
``predictions.csv`` / ``predictions.json`` hold per case the lesion volumes of the all/focal/ce
masks, where a ground truth exists their ISLES metrics, and the case's problems (also printed as
warnings: what the reader found in the input and how it was handled), plus the summary over
cases.

File names are made of case folder names and the manifest's losses and member names, so every
output path is made with ``core.safepath.path_inside``: nothing is written outside DIR.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from strokelens.app.commands import add_allow_external_members, checked_number, folder
from strokelens.app.commands.evaluate import format_table, write_csv, write_json
from strokelens.core.case import Case
from strokelens.core.dataset import Dataset, open_dataset
from strokelens.core.demo import DEMO_MANIFEST, ensure_demo
from strokelens.core.devices import DEVICES
from strokelens.core.editing.components import check_min_ml
from strokelens.core.engine import PRECISIONS, Engine
from strokelens.core.errors import DataError
from strokelens.core.manifest import Manifest, read_manifest
from strokelens.core.metrics import METRICS, case_metrics, summarize
from strokelens.core.nifti import open_image, spatial_shape
from strokelens.core.output import prepare_folders, write_error
from strokelens.core.prediction import Prediction
from strokelens.core.safepath import check_name, path_inside
from strokelens.core.writer import mask_file_name, write_mask, write_probability

#: Stored size of the gzip'd float32 maps over their uncompressed size, for the free-space
#: check (rough: the demo ensemble's 14 maps of a 22-slice phantom case took 4.86-5.03 MB of
#: 5.77 MB each).
GZIP_RATIO = 0.9

HELP = "segment the infarct core of a case or data set with an ensemble (masks, maps, volumes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", nargs="?", help="case folder, split folder or data set root (not with --demo)"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the bundled demo ensemble on the demo phantom's testing cases (made on first use)",
    )
    parser.add_argument("--out", type=folder, required=True, help="output folder")
    parser.add_argument("--ensemble", help="ensemble manifest (JSON) naming the member weights")
    add_allow_external_members(parser)
    parser.add_argument(
        "--method", default="strokelens", help="method name in ISLES submission file names"
    )
    parser.add_argument(
        "--members", action="store_true", help="also write every member's probabilities"
    )
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default: auto")
    parser.add_argument("--batch-size", type=int, help="slices per batch (default by device)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 where the hardware computes it (CUDA, CPUs with AVX-512 BF16 or AMX), "
        "else fp32; fp32: exact fp32 results",
    )
    parser.add_argument(
        "--min-component-ml",
        type=checked_number(check_min_ml),
        default=0.0,
        help="drop mask components smaller than this many mL (default 0: keep all)",
    )


def manifest_path(given: str | None) -> Path:
    """``--ensemble``, else the bundled demo ensemble."""
    if given:
        return Path(given)
    if not DEMO_MANIFEST.is_file():
        raise DataError(
            DEMO_MANIFEST,
            "no --ensemble MANIFEST given and no bundled demo ensemble installed here",
        )
    return DEMO_MANIFEST


def mask_name(case: Case, method: str) -> str:
    return mask_file_name(case.id, case.submission_id, method)


@dataclass
class CaseFiles:
    """Where one case's outputs go."""

    mask: Path
    probability: dict[str, Path]  # source ("all" or a loss) -> mean probability map
    uncertainty: Path
    members: dict[str, Path]  # member name -> its probabilities (empty without --members)


def case_files(
    out: Path, case: Case, sources: list[str], members: list[str], method: str, per_split: bool
) -> CaseFiles:
    """The files of ``case`` under ``out``, each made with ``path_inside`` (known before the
    inference runs, so a name that cannot be a file costs no inference)."""
    sub = [case.split] if per_split and case.split else []

    def inside(*parts: str) -> Path:
        return path_inside(out, *sub, *parts)

    def prob(source: str) -> Path:
        return inside("maps", f"{case.id}_prob{'' if source == 'all' else '_' + source}.nii.gz")

    return CaseFiles(
        mask=inside(mask_name(case, method)),
        probability={source: prob(source) for source in sources},
        uncertainty=inside("maps", f"{case.id}_uncertainty.nii.gz"),
        members={name: inside("maps", f"{case.id}_member_{name}.nii.gz") for name in members},
    )


def write_outputs(case: Case, prediction: Prediction, files: CaseFiles) -> Path:
    """The case's mask and maps; returns the mask path."""
    for source in prediction.sources:
        write_probability(case, prediction.mean(source), files.probability[source])
    write_probability(case, prediction.uncertainty, files.uncertainty)
    for name, probabilities in zip(prediction.member_names, prediction.members, strict=True):
        if name in files.members:
            write_probability(case, probabilities, files.members[name])
    return write_mask(case, prediction.mask(), files.mask)


def case_row(case: Case, prediction: Prediction, mask_path: Path, out: Path) -> dict:
    """The case's row: volumes per source, with a ground truth metrics per source, and the
    case's problems (what the reader found and fixed, e.g. NaN voxels set to 0)."""
    row: dict = {
        "key": case.key,
        "id": case.id,
        "split": case.split,
        "submission_id": case.submission_id or "",
        "mask": str(mask_path.relative_to(out)),
        "seconds": round(prediction.timing["total"], 3),
        "truth_ml": case.lesion_ml(),
    }
    row |= {f"{s}_ml": v for s, v in prediction.volumes_ml().items()}
    if case.mask is not None:
        for source in prediction.sources:
            scores = case_metrics(prediction.mask(source), case.mask, case.spacing)
            row |= {f"{source}_{k}": v for k, v in scores.items()}
    row["problems"] = list(case.problems)
    return row


def output_bytes(dataset: Dataset, n_maps: int) -> int:
    """A rough size of what ``predict`` writes: per case ``n_maps`` float32 maps and a uint8
    mask, as stored uncompressed, times ``GZIP_RATIO``; from the CT headers alone (a case whose
    header cannot be read is skipped later, with its message)."""
    total = 0
    for ref in dataset:
        try:
            voxels = math.prod(spatial_shape(open_image(ref.files["CT"])))
        except (KeyError, DataError):
            continue
        total += voxels * (4 * n_maps + 1)
    return int(total * GZIP_RATIO)


def output_folders(out: Path, dataset: Dataset, per_split: bool) -> list[Path]:
    """``out`` and the folders under it that ``case_files`` puts files in."""
    subs = [[]] + (
        [[s] for s in sorted({r.split for r in dataset if r.split})] if per_split else []
    )
    return [path_inside(out, *sub, *maps) for sub in subs for maps in ([], ["maps"])]


class Report:
    """``predictions.csv`` and ``predictions.json``, rewritten (atomically) after each case, so
    that a killed run leaves them describing exactly the cases whose outputs it wrote."""

    def __init__(self, out: Path, header: dict, sources: list[str]):
        self.out, self.header, self.sources = out, header, sources
        self.rows: list[dict] = []
        self.failed: list[dict] = []

    def per_source(self) -> dict[str, list[dict]]:
        scored = [r for r in self.rows if "all_dsc" in r]
        return {s: [{k: r[f"{s}_{k}"] for k in METRICS} for r in scored] for s in self.sources}

    def write(self, finished: bool = False) -> None:
        """Both files as they stand; before the first case this replaces a previous run's."""
        per_source = self.per_source()
        summary = {s: summarize(m) for s, m in per_source.items() if m}
        csv_path, json_path = self.out / "predictions.csv", self.out / "predictions.json"
        try:
            if self.rows:  # a CSV cell holds the problems joined
                write_csv([r | {"problems": "; ".join(r["problems"])} for r in self.rows], csv_path)
            else:
                csv_path.unlink(missing_ok=True)
            report = self.header | {"finished": finished, "cases": self.rows}
            write_json(report | {"summary": summary, "failed": self.failed}, json_path)
        except OSError as exc:
            raise write_error(exc, self.out) from exc


def _predict_case(engine: Engine, case: Case, label: str) -> Prediction:
    """One case through the engine, with a progress bar of member-slices."""
    total = len(engine.models) * case.n_slices
    with tqdm(total=total, desc=label, unit="member-slice") as bar:
        return engine.predict(case, progress=lambda done, _total: bar.update(done - bar.n))


def run(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.method):
        raise DataError(Path(args.out), f"--method {args.method!r}: use letters, digits, _ and -")
    if args.demo == bool(args.input):
        raise DataError(Path(args.out), "give either INPUT or --demo")
    manifest = read_manifest(manifest_path(args.ensemble), args.allow_external_members)
    source = (
        args.input or ensure_demo(progress=lambda f: print(f"demo data: wrote {f}")) / "TESTING"
    )
    dataset = open_dataset(source)
    out = Path(args.out)
    ids = [ref.id for ref in dataset]
    per_split = len(set(ids)) < len(ids)
    sources = ["all", *dict.fromkeys(m.loss for m in manifest.members)]
    members = [m.name for m in manifest.members] if args.members else []
    # the output folders before any model loads: a fault there costs no inference
    needed = output_bytes(dataset, len(sources) + 1 + len(members))
    with prepare_folders(output_folders(out, dataset, per_split), needed, dataset.root) as stale:
        for path in stale:
            print(f"removed {path}: a temporary file left by an interrupted run", file=sys.stderr)
        return _predict(args, manifest, dataset, out, sources, members, per_split)


def _predict(
    args: argparse.Namespace,
    manifest: Manifest,
    dataset: Dataset,
    out: Path,
    sources: list[str],
    members: list[str],
    per_split: bool,
) -> int:
    """The inference into ``out``, whose folders are checked and locked."""
    try:
        engine = Engine(
            manifest,
            device=args.device,
            threads=args.threads,
            batch_size=args.batch_size,
            precision=args.precision,
            min_component_ml=args.min_component_ml,
        )
    except ValueError as exc:  # a setting this machine cannot honour (no CUDA, threads < 1)
        print(f"strokelens predict: error: {exc}", file=sys.stderr)
        return 2
    header = {
        "ensemble": {
            "name": manifest.name,
            "manifest": str(manifest.path),
            "members": [
                {"name": m.name, "loss": m.loss, "fold": m.fold, "sha256": m.sha256}
                for m in manifest.members
            ],
        },
        "method": args.method,
        "device": engine.device.type,
        "precision": "bf16" if engine.bf16 else "fp32",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report = Report(out, header, sources)
    report.write()
    for n, ref in enumerate(dataset, 1):
        try:
            check_name(ref.id, "case folder name", ref.folder)
            case = dataset.load(ref)
            files = case_files(out, case, sources, members, args.method, per_split)
            for problem in case.problems:
                tqdm.write(f"{ref.key}: warning: {problem}", file=sys.stderr)
            prediction = _predict_case(engine, case, f"{ref.key} ({n}/{len(dataset)})")
        except DataError as exc:  # the case, or a relative version that cannot read it
            report.failed.append({"key": ref.key, "error": str(exc)})
            report.write()
            tqdm.write(f"{ref.key}: skipped: {exc}", file=sys.stderr)
            continue
        try:
            mask_path = write_outputs(case, prediction, files)
        except OSError as exc:
            raise write_error(exc, out) from exc
        report.rows.append(case_row(case, prediction, mask_path, out))
        report.write()
    report.write(finished=True)
    per_source = report.per_source()
    if per_source["all"]:
        summary = {s: summarize(m) for s, m in per_source.items()}
        keys = [r["key"] for r in report.rows if "all_dsc" in r]
        print(format_table(per_source["all"], summary["all"], keys, METRICS))
        for source in sources[1:]:
            dsc = summary[source]["dsc"]
            print(f"{source} members only: DSC {dsc['mean']:.3f} +- {dsc['sd']:.3f}")
    print(f"{len(report.rows)} cases predicted, {len(report.failed)} failed; results in {out}")
    return 1 if report.failed else 0
