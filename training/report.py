"""The paper's Table 1 (per-fold DSC, focal vs cross entropy) and a Fig. 3-style bar chart.

Reads the ``cv.json`` of one or more cross-validation runs (one architecture each), validated
against ``CvSummary``: a hand-edited or damaged file is one line naming the file and the field,
never a KeyError from inside the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, Field

from strokelens.core.output import prepare_folders, write_error
from strokelens.core.schema import STRICT, Finite, Int, Str, load
from strokelens.core.writer import atomic_write, atomic_write_bytes

LOSS_LABELS = {"focal": "Focal loss", "ce": "Cross entropy", "wce": "Weighted CE"}
LOSS_COLOURS = {"focal": "#d62728", "ce": "#1f77b4", "wce": "#2ca02c"}  # red / blue as Fig. 3


Loss = Literal[tuple(LOSS_LABELS)]
Count = Annotated[Int, Field(ge=0)]


class FoldRun(BaseModel):
    """One (loss, fold) of ``cv.json``'s ``runs``: the report needs loss, fold and dsc."""

    model_config = STRICT
    loss: Loss
    fold: Annotated[Int, Field(ge=1)]
    dsc: Annotated[Finite, Field(ge=0, le=1)]
    best_epoch: Count | None = None
    epochs: Count | None = None
    val_dice: Finite | None = None
    n_cases: Count | None = None


def _one_per_fold(runs: list[FoldRun]) -> list[FoldRun]:
    seen = set()
    for r in runs:
        if (r.loss, r.fold) in seen:  # the table would show only one of them
            raise ValueError(f"{r.loss} fold {r.fold} is listed twice")
        seen.add((r.loss, r.fold))
    return runs


class CvSummary(BaseModel):
    """The schema of a run's ``cv.json`` (written by ``training.cv``)."""

    model_config = STRICT
    arch: Str
    runs: Annotated[list[FoldRun], Field(min_length=1), AfterValidator(_one_per_fold)]
    config: dict[Str, Any] | None = None
    folds: list[Count] | None = None
    mean_dsc: dict[Loss, Finite] | None = None


def read_run(run: str | Path) -> dict:
    """A run's ``cv.json``, validated, as a dict with the run folder under ``run``."""
    summary = load(Path(run) / "cv.json", CvSummary, "cross-validation summary")
    return summary.model_dump() | {"run": str(run)}


def _fold_table(run: dict) -> tuple[list[str], list[int], dict[str, dict[int, float]]]:
    losses = sorted({r["loss"] for r in run["runs"]}, key=list(LOSS_LABELS).index)
    folds = sorted({r["fold"] for r in run["runs"]})
    dsc = {loss: {r["fold"]: r["dsc"] for r in run["runs"] if r["loss"] == loss} for loss in losses}
    return losses, folds, dsc


def mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def table1(run: dict) -> str:
    """Markdown table: DSC per validation fold and loss, then mean +- sd over folds."""
    losses, folds, dsc = _fold_table(run)
    lines = [
        f"DSC per cross-validation fold, {run['arch']} ({run['run']})",
        "",
        "| Fold | " + " | ".join(LOSS_LABELS.get(x, x) for x in losses) + " |",
        "|---|" + "---|" * len(losses),
    ]
    for fold in folds:
        cells = [f"{dsc[x][fold]:.2f}" if fold in dsc[x] else "-" for x in losses]
        lines.append(f"| {fold} | " + " | ".join(cells) + " |")
    totals = []
    for x in losses:
        m, sd = mean_sd(list(dsc[x].values()))
        totals.append(f"{m:.2f}" if np.isnan(sd) else f"{m:.2f} ± {sd:.2f}")
    lines.append("| Total | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def bar_chart(runs: list[dict], path: str | Path) -> Path:
    """Mean DSC over folds per architecture and loss, with the fold SD as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = sorted({r["loss"] for run in runs for r in run["runs"]}, key=list(LOSS_LABELS).index)
    width = 0.8 / len(losses)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(runs), 3.6), dpi=120)
    for i, loss in enumerate(losses):
        stats = [
            mean_sd(list(_fold_table(run)[2].get(loss, {}).values()) or [np.nan]) for run in runs
        ]
        x = np.arange(len(runs)) + (i - (len(losses) - 1) / 2) * width
        ax.bar(
            x,
            [m for m, _ in stats],
            width,
            yerr=[0 if np.isnan(sd) else sd for _, sd in stats],
            capsize=3,
            color=LOSS_COLOURS.get(loss),
            label=LOSS_LABELS.get(loss, loss),
        )
    labels = [f"{run['arch']}\n{len(_fold_table(run)[1])} fold(s)" for run in runs]
    ax.set_xticks(np.arange(len(runs)), labels)
    ax.set_ylabel("DSC, mean ± sd over CV folds")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def write_report(runs: list[str | Path], out: str | Path) -> tuple[Path, Path]:
    """``report.md`` (one Table 1 per run) and ``fig3.png`` in ``out``."""
    out = Path(out)
    data = [read_run(r) for r in runs]
    with prepare_folders([out]):  # a file, read-only or full: one line before anything is written
        md = out / "report.md"
        try:
            atomic_write_bytes(md, ("\n\n".join(table1(run) for run in data) + "\n").encode())
            return md, bar_chart(data, out / "fig3.png")
        except OSError as exc:
            raise write_error(exc, out) from exc
