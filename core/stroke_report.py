"""The one-page stroke report of a case (PDF and PNG), drawn with matplotlib's Agg backend.

Page (A4 portrait): case and patient id and the research-use line; a montage of every slice (CT
in a brain window, Tmax > 6 s in green, the AI core in pink, as RAPID's summary; the threshold
core's outline in yellow; the midline the hemispheres were split at, dotted); the volumes table (AI core and threshold core side by side,
Tmax > 4/6/8/10 s, HIR, the member range); the target-mismatch criteria of each core; the
verdict (only from a complete AI core); where the core comes from. Every number comes from the
``StrokeSummary``; the montage is composed in numpy and drawn as one image (fast: one
``imshow`` instead of one axes per slice).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from scipy import ndimage

from strokelens.core.editing.masks import clip_segment
from strokelens.core.mismatch import shown_value
from strokelens.core.stroke_summary import RESEARCH_LINE, StrokeSummary
from strokelens.core.writer import atomic_write

CT_WINDOW_HU = (0.0, 80.0)
CORE_RGB = (0.878, 0.314, 0.541)  # the panel's pink, #e0508a
HYPO_RGB = (0.247, 0.749, 0.435)  # the panel's green, #3fbf6f
THRESHOLD_RGB = (1.0, 0.835, 0.31)  # the threshold core's outline, #ffd54f
ALPHA = 0.55
PAGE_IN = (8.27, 11.69)  # A4
PNG_DPI = 110
MAX_COLUMNS = 6
#: Ids, names and the lines under the table: a font without ligatures, so that the PDF's text
#: holds them as written ("ff" in a fingerprint is otherwise one glyph, and copies as nothing).
TEXT_FONT = "DejaVu Sans Mono"
#: Characters per line of that font at 8 pt across the page's text width.
LINE_CHARS = 100
#: The montage shows each slice cropped to the head (CT above this HU on any slice) plus a margin.
HEAD_HU = -500.0
MARGIN_PX = 4


def _box(index: np.ndarray, size: int) -> slice:
    if index.size == 0:
        return slice(0, size)
    return slice(max(int(index.min()) - MARGIN_PX, 0), min(int(index.max()) + 1 + MARGIN_PX, size))


def montage(summary: StrokeSummary) -> tuple[np.ndarray, int, tuple[int, int]]:
    """RGB float ``(rows * y, columns * x, 3)`` of every slice cropped to the head, the column
    count and the crop's (top, left) corner."""
    layers = summary.layers
    if layers is None:
        raise ValueError("the summary holds no layers to draw")
    ys, xs = np.nonzero((layers.ct > HEAD_HU).any(axis=0))
    box = (slice(None), _box(ys, layers.ct.shape[1]), _box(xs, layers.ct.shape[2]))
    ct = layers.ct[box]
    n, h, w = ct.shape
    columns = min(MAX_COLUMNS, max(1, math.ceil(math.sqrt(n * 1.3))))
    rows = math.ceil(n / columns)
    lo, hi = CT_WINDOW_HU
    grey = np.clip((ct - lo) / (hi - lo), 0, 1)[..., None] * np.ones(3, np.float32)
    for mask, rgb in ((layers.hypoperfused, HYPO_RGB), (layers.ai_core, CORE_RGB)):
        if mask is not None:
            on = np.asarray(mask)[box] != 0
            grey[on] = (1 - ALPHA) * grey[on] + ALPHA * np.asarray(rgb, np.float32)
    if layers.threshold_core is not None:
        inside = np.asarray(layers.threshold_core)[box] != 0
        ring = inside & ~ndimage.binary_erosion(inside, np.ones((1, 3, 3), bool))
        grey[ring] = THRESHOLD_RGB
    page = np.zeros((rows * h, columns * w, 3), np.float32)
    for z in range(n):
        r, c = divmod(z, columns)
        page[r * h : (r + 1) * h, c * w : (c + 1) * w] = grey[z]
    return page, columns, (box[1].start, box[2].start)


def _ml(value: float | None) -> str:
    return "–" if value is None else f"{shown_value(value)} mL"


def table_rows(summary: StrokeSummary) -> list[tuple[str, str, str]]:
    """(quantity, AI core, threshold core) rows of the volumes table; the Tmax rows and HIR
    are the case's (one value, shared by both cores)."""
    c_ai = {c.label: c for c in summary.criteria}
    c_tc = {c.label: c for c in summary.threshold_criteria}
    labels = list(c_ai)

    def crit(label: str) -> tuple[str, str]:
        return c_ai[label].shown, c_tc[label].shown

    core_ai = _ml(summary.ai_core_ml)
    if summary.ai_core_ml is not None and not summary.ai_core_complete:
        core_ai = f"≥ {core_ai} (partial)"
    rng = summary.member_range_ml
    rows = [
        ("Core", core_ai, _ml(summary.threshold_core_ml)),
        ("Members' core range", "–" if rng is None else f"{rng[0]:.1f}-{rng[1]:.1f} mL", ""),
        ("Mismatch volume", *(s + (" mL" if s != "–" else "") for s in crit(labels[1]))),
        ("Mismatch ratio", *crit(labels[0])),
    ]
    for t, v in summary.hypoperfusion_ml.items():
        rows.append((f"Tmax > {t:g} s", _ml(v), ""))
    hir = "–" if summary.hir is None else f"{summary.hir:.2f}"
    rows.append(("HIR (Tmax>10 / Tmax>6)", hir, ""))
    return rows


def text_lines(summary: StrokeSummary) -> list[str]:
    """The report's lines under the table: criteria, verdict, core origin, reference, problems."""
    lines = ["Target mismatch (DEFUSE 3): AI core | threshold core"]
    for a, t in zip(summary.criteria, summary.threshold_criteria, strict=True):
        lines.append(f"  {a.label}:  {a.mark} {a.shown}  |  {t.mark} {t.shown}")
    lines.append(f"Verdict (AI core): {summary.verdict_words}")
    lines.append(f"Core from: {summary.origin.words}")
    if summary.healthy_cbf is not None:
        lines.append(
            f"Threshold core: rCBF < 30 % of the {summary.healthy_side or '?'} (healthy) "
            f"hemisphere's mean CBF {summary.healthy_cbf:.1f}; midline {summary.midline_angle_deg:+.1f}°, "
            f"symmetry {summary.midline_symmetry:.2f}"
        )
    lines.extend(f"Note: {p}" for p in summary.problems)
    return lines


def figure(summary: StrokeSummary):
    """The page as a matplotlib Figure (Agg canvas; no pyplot, no GUI backend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=PAGE_IN)
    fig.text(0.05, 0.965, f"Case {summary.case_key}", fontsize=15, weight="bold", family=TEXT_FONT)
    who = f"Patient {summary.patient_id}" if summary.patient_id else "Patient id unknown"
    fig.text(0.05, 0.945, who, fontsize=10, family=TEXT_FONT)
    fig.text(0.95, 0.965, RESEARCH_LINE, fontsize=9, ha="right", color="#b00020", weight="bold")

    page, columns, (top, left) = montage(summary)
    ax = fig.add_axes((0.03, 0.47, 0.94, 0.46))
    ax.imshow(page, interpolation="nearest")
    ax.set_axis_off()
    layers = summary.layers
    n = layers.ct.shape[0]
    h, w = page.shape[0] // math.ceil(n / columns), page.shape[1] // columns
    for z in range(n):
        r, c = divmod(z, columns)
        ax.text(c * w + 6, r * h + 18, f"{z + 1}", color="white", fontsize=7)
        if layers.midline is not None:
            (y0, x0), (y1, x1) = layers.midline.segment(z, layers.ct.shape)
            y0, y1, x0, x1 = y0 - top, y1 - top, x0 - left, x1 - left
            clip = clip_segment(
                np.array([y0, x0]), np.array([y1, x1]), np.zeros(2), np.array([h - 1.0, w - 1.0])
            )
            if clip is not None:
                (a, b), (d, e) = clip
                ax.plot(
                    [c * w + b, c * w + e], [r * h + a, r * h + d], ":", color="#9ecbff", lw=0.6
                )
    ax.set_xlim(-0.5, page.shape[1] - 0.5)
    ax.set_ylim(page.shape[0] - 0.5, -0.5)
    fig.text(0.05, 0.455, "■ AI core", color=_hex(CORE_RGB), fontsize=9)
    fig.text(0.16, 0.455, "■ Tmax > 6 s", color=_hex(HYPO_RGB), fontsize=9)
    fig.text(0.30, 0.455, "□ threshold core (outline)", color="#c9a000", fontsize=9)
    fig.text(0.55, 0.455, "··· midline", color="#5a8fd0", fontsize=9)

    table = fig.add_axes((0.05, 0.2, 0.9, 0.24))
    table.set_axis_off()
    cells = table.table(
        cellText=[list(r) for r in table_rows(summary)],
        colLabels=["", "AI core", "Threshold core (rCBF < 30 %)"],
        loc="upper center",
        cellLoc="left",
    )
    cells.auto_set_font_size(False)
    cells.set_fontsize(8.5)
    cells.scale(1, 1.25)
    y = 0.185
    for line in text_lines(summary):
        for part in textwrap.wrap(line, LINE_CHARS, subsequent_indent="    ") or [""]:
            fig.text(0.05, y, part, fontsize=8, family=TEXT_FONT)
            y -= 0.016
    return fig


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def write_report(summary: StrokeSummary, pdf: Path, png: Path) -> tuple[Path, Path]:
    """Write the page as ``pdf`` and ``png``, each atomically (``writer.atomic_write``)."""
    fig = figure(summary)
    atomic_write(pdf, lambda tmp: fig.savefig(tmp, format="pdf"))
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=PNG_DPI))
    return Path(pdf), Path(png)
