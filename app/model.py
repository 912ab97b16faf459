"""The viewer's state, free of Qt: one ``Model`` with events (psygnal) that Qt views subscribe to.

The model never reads files and never blocks: the main window runs ``prepare_case`` and
``load_perfusion`` (the slow, Qt-free parts) in worker threads and hands the results to the model
on the GUI thread, which then tells its views through events.

Overlay layers are named sources, so the inference engine plugs in later without view changes:
``truth`` (the case's ground truth), ``focal`` / ``ce`` (masks of the focal and cross-entropy
members' mean), ``mean`` (all-member mean probability), ``corrected`` (the reviewer's mask) and
``uncertainty`` (member standard deviation); see :meth:`Model.set_prediction`. ``tmax6`` and
``rcbf30`` (Tmax > 6 s, the threshold core) are the case's own measures
(``core.stroke_summary.measure_case``, made in a worker by ``app.summary_session``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from psygnal import Signal

from strokelens.core.case import CHANNELS, Case
from strokelens.core.metrics import volume_ml
from strokelens.core.plausibility import MAPS, brain_mask
from strokelens.core.project.review import Status
from strokelens.core.stroke_summary import CoreKind
from strokelens.core.units import UNITS as UNITS  # shown beside values; re-exported for the views

if TYPE_CHECKING:
    from strokelens.core.dataset import CaseRef, Dataset
    from strokelens.core.editing.history import Region
    from strokelens.core.prediction import Prediction


#: Fixed default windows (width, level): CT brain window; MTT and Tmax in seconds, Tmax centred
#: on the 6 s hypoperfusion threshold. CBF and CBV have no common scale across sources, so their
#: default window is taken from each case (``auto_window``).
FIXED_WINDOWS: dict[str, tuple[float, float]] = {
    "CT": (80.0, 40.0),
    "MTT": (16.0, 8.0),
    "Tmax": (12.0, 6.0),
}
#: CT window presets (width, level) offered in the View menu.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "Brain": (80.0, 40.0),
    "Stroke": (40.0, 35.0),
    "Subdural": (200.0, 80.0),
    "Bone": (2000.0, 500.0),
}
#: Thickest contour drawing (pixels of the slice).
MAX_CONTOUR_WIDTH = 4
#: Maps' auto window tops out at this percentile of the positive voxels: high enough for grey
#: matter, low enough that vessels (a few % of voxels, several times brighter) do not set it.
AUTO_PERCENTILE = 95.0


@dataclass
class Entry:
    """One case of the open data set as the browser lists it.

    What is known without visiting the case comes from the listing (``ref.errors``) and the
    prediction cache's index: ``cached`` says a complete prediction waits there, ``partial``
    (done, total) that only some slices are done (a stopped run, this session's or a cached
    one), ``error`` why the case cannot be read.
    """

    ref: CaseRef
    n_slices: int | None = None
    status: Status = Status.NEW
    reviewer: str | None = None  # who approved the case (the project's record)
    unsaved: bool = False  # the correction has edits not yet in the project
    core_ml: float | None = None  # predicted core (ensemble mask), None until predicted
    progress: float | None = None  # fraction done while the AI runs on the case, else None
    cached: bool = False
    partial: tuple[int, int] | None = None
    error: str | None = None
    doubt: float | None = None  # the ensemble's doubt (``core.ranking``), None until scored

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def status_text(self) -> str:
        """The status column: the AI's progress, else an error, a partial prediction, or the
        review status."""
        if self.progress is not None:
            return f"AI {self.progress:.0%}"
        if self.error is not None:
            return "error"
        if self.status is Status.NEW and self.partial is not None:
            return f"partial ({self.partial[0]} / {self.partial[1]} slices)"
        return self.status.value + (" • unsaved" if self.unsaved else "")


@dataclass
class Layer:
    """An overlay source and how it is drawn.

    ``kind`` "mask" draws voxels != 0 in ``color``; "heat" draws values in ``[0, vmax]`` with
    ``lut`` (or ``color`` with alpha growing with the value) and its contour at ``threshold``.
    """

    name: str
    title: str
    color: tuple[int, int, int]
    kind: str = "mask"  # "mask", "heat" or "labels"
    visible: bool = True
    opacity: float = 0.8
    contour: bool = True
    vmax: float = 1.0
    threshold: float = 0.5
    lut: str = ""
    palette: tuple[tuple[int, int, int], ...] = ()  # "labels": colour of label 1, 2, ...
    legend: str = ""  # what the layer's voxels are, under its name in the layers panel


#: The focal-vs-CE difference layer's colours: agree, focal only, CE only (``compare`` labels).
DIFFERENCE_PALETTE = ((245, 245, 245), (235, 35, 35), (0, 225, 235))

#: Fig. 4 of the paper: ground truth orange, focal loss red, cross entropy cyan.
LAYERS: tuple[Layer, ...] = (
    Layer("truth", "Ground truth", (255, 150, 0)),
    Layer("focal", "Focal ensemble", (235, 35, 35)),
    Layer("ce", "Cross-entropy ensemble", (0, 225, 235)),
    Layer("mean", "All-member mean", (255, 235, 60), kind="heat", visible=False, contour=False),
    Layer("corrected", "Corrected mask", (70, 230, 90), contour=False, opacity=0.5),
    Layer(
        "uncertainty", "Uncertainty", (255, 255, 255), kind="heat", visible=False,
        contour=False, vmax=0.5, threshold=0.2, lut="hot", opacity=0.7,
    ),
    Layer(
        "difference", "Focal vs CE (agree / focal / CE)", (245, 245, 245), kind="labels",
        visible=False, contour=False, opacity=0.7, palette=DIFFERENCE_PALETTE,
    ),
    Layer(
        "tmax6", "Tmax > 6 s", (63, 191, 111), visible=False, contour=False, opacity=0.45,
        legend="hypoperfused: Tmax > 6 s, CT 15-80 HU (RAPID's green)",
    ),
    Layer(
        "rcbf30", "Threshold core (rCBF < 30 %)", (224, 80, 138), visible=False, contour=False,
        opacity=0.6, legend="CBF < 30 % of the healthy hemisphere's mean (midline split)",
    ),
)  # fmt: skip
#: Layers derived from the ensemble's prediction (refreshed when it changes).
PREDICTION_LAYERS = ("focal", "ce", "mean", "uncertainty", "difference")
#: Layers measured from the case's maps alone (``set_measured_layers``).
MEASURED_LAYERS = ("tmax6", "rcbf30")


@dataclass(frozen=True)
class AiCore:
    """What the AI core of the current case is made of (``core.stroke_summary.summarize_stroke``'s
    inputs): the reviewer's mask when there is one, else the ensemble's prediction, complete or
    not; the prediction is given beside a correction too (the members' range). Never the ground
    truth: that is the reference, shown as such."""

    kind: CoreKind  # APPROVED, CORRECTED or ENSEMBLE
    corrected: np.ndarray | None
    prediction: Prediction | None


@dataclass
class PreparedCase:
    """A loaded case plus what the viewer derives from it once (computed in a worker).

    ``display`` holds the arrays the panes draw: the channels themselves, except that the maps
    are NaN (drawn transparent, i.e. background) where all four maps are 0, outside the brain;
    a Tmax of 0 s inside the brain stays a colour.
    """

    case: Case
    display: dict[str, np.ndarray]
    windows: dict[str, tuple[float, float]]
    start_slice: int
    start_cursor: tuple[int, int]  # (y, x): the ground truth's centre there, else the image's


@dataclass
class PerfusionSeries:
    """The 4D source of the current case and its arterial input function."""

    case_key: str
    series: np.ndarray  # float32 (t, z, y, x) HU
    dt: float  # s between frames
    aif: np.ndarray  # (t,) HU enhancement
    aif_voxels: np.ndarray  # (n, 3) z, y, x
    tissue_hu: tuple[float, float]  # HU range of brain curves (0.5-99.5 %), the plot's y range

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.series.shape[0], dtype=np.float32) * self.dt


def auto_window(image: np.ndarray) -> tuple[float, float]:
    """Window from 0 to the ``AUTO_PERCENTILE`` of the positive voxels (maps are 0 off-brain)."""
    positive = image[image > 0]
    top = float(np.percentile(positive, AUTO_PERCENTILE)) if positive.size else 1.0
    top = top if top > 0 else 1.0
    return top, top / 2.0


def default_windows(display: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    return {c: FIXED_WINDOWS.get(c) or auto_window(display[c]) for c in CHANNELS}


def prepare_case(case: Case) -> PreparedCase:
    """Windows, and where to start: the slice with the most ground truth and the lesion's centre
    on it (else the middle slice and the image centre)."""
    display = display_arrays(case)
    _, ny, nx = case.shape
    start, cursor = case.n_slices // 2, (ny // 2, nx // 2)
    if case.mask is not None and case.mask.any():
        start = int(np.argmax(case.mask.reshape(case.n_slices, -1).sum(axis=1)))
        rows, cols = np.nonzero(case.mask[start])
        cursor = (int(np.median(rows)), int(np.median(cols)))
    return PreparedCase(case, display, default_windows(display), start, cursor)


def display_arrays(case: Case) -> dict[str, np.ndarray]:
    outside = ~brain_mask(case.channels)
    display = {c: case.physical(c) for c in CHANNELS}
    if outside.any():
        for channel in MAPS:
            display[channel] = np.where(outside, np.float32(np.nan), display[channel])
    return display


def load_perfusion(case: Case) -> PerfusionSeries:
    """The 4D series, its frame interval and the AIF that ``compute_maps`` would select."""
    from strokelens.core.perfusion.analysis import find_aif

    series = case.perfusion()
    dt = case.frame_interval_s or 1.0
    try:
        found = find_aif(series, case.spacing)
    except ValueError:  # no brain in the HU window: show the curves without an AIF
        empty = np.zeros(series.shape[0], np.float32)
        low, high = np.percentile(series, [0.5, 99.5])
        return PerfusionSeries(
            case.key, series, dt, empty, np.zeros((0, 3), np.int64), (float(low), float(high))
        )
    low, high = np.percentile(series[:, found.brain_mask], [0.5, 99.5])
    return PerfusionSeries(
        case.key, series, dt, found.aif, found.aif_voxels, (float(low), float(high))
    )


class Model:
    """Data set, current case, slice, cursor, windows, overlay layers, predictions and masks.

    Events (arguments): ``dataset_changed()``, ``entry_changed(index)``, ``case_changed()``,
    ``slice_changed(z)``, ``cursor_changed()``, ``window_changed(channel)``,
    ``layer_changed(name)`` (display settings), ``layer_data_changed(name, region)`` (the current
    case's array for that layer changed inside ``region``, a
    :class:`~strokelens.core.editing.history.Region`; None: anywhere), ``mask_changed()`` (the
    best core mask of the current case), ``perfusion_changed()``. Slots are held weakly (a
    closed view is not kept alive), and a paint stroke pauses ``mask_changed`` until it ends.
    """

    dataset_changed = Signal()
    entry_changed = Signal(int)
    case_changed = Signal()
    slice_changed = Signal(int)
    cursor_changed = Signal()
    window_changed = Signal(str)
    layer_changed = Signal(str)
    layer_data_changed = Signal(str, object)
    mask_changed = Signal()
    perfusion_changed = Signal()
    overlay_style_changed = Signal()

    def __init__(self) -> None:
        self.dataset: Dataset | None = None
        self.entries: list[Entry] = []
        self.index = -1
        self.prepared: PreparedCase | None = None
        self.slice = 0
        self.cursor: tuple[int, int] | None = None  # (y, x) on the current slice
        self.windows: dict[str, tuple[float, float]] = {}
        self._user_windows: set[str] = set()
        self.layers: dict[str, Layer] = {layer.name: replace(layer) for layer in LAYERS}
        self.predictions: dict[str, Prediction] = {}
        self.corrected: dict[str, np.ndarray] = {}
        self.perfusion: PerfusionSeries | None = None
        self.contour_width = 1  # pixels of a contour drawing, for all layers
        self.overlays_on_ct_only = False  # the maps' colours stay unobscured
        self._derived: dict[tuple[str, str], np.ndarray | None] = {}
        self._measured: dict[str, dict[str, np.ndarray | None]] = {}  # key -> MEASURED_LAYERS

    # -- data set and case -------------------------------------------------------------------
    @property
    def case(self) -> Case | None:
        return None if self.prepared is None else self.prepared.case

    def set_dataset(self, dataset: Dataset, n_slices: dict[str, int] | None = None) -> None:
        """Replace the data set; ``n_slices`` (key -> slices) fills the browser's column."""
        n_slices = n_slices or {}
        self.dataset = dataset
        self.entries = [
            Entry(ref, n_slices.get(ref.key), error="; ".join(ref.errors) or None)
            for ref in dataset
        ]
        self.index, self.prepared, self.perfusion, self.cursor = -1, None, None, None
        self.predictions.clear()
        self.corrected.clear()
        self._derived.clear()
        self._measured.clear()
        self.dataset_changed.emit()
        self.case_changed.emit()
        self.cursor_changed.emit()  # the readout, the compare dock: nothing of the old data set
        self.mask_changed.emit()

    def index_of(self, key: str) -> int:
        for index, entry in enumerate(self.entries):
            if entry.key == key:
                return index
        raise KeyError(f"no case {key!r} in the open data set")

    def set_case(self, index: int, prepared: PreparedCase) -> None:
        """Show ``prepared`` (the loaded case of entry ``index``)."""
        case = prepared.case
        entry = self.entries[index]
        if case.key != entry.key:
            raise ValueError(f"case {case.key} is not entry {index} ({entry.key})")
        self.index, self.prepared, self.perfusion = index, prepared, None
        self.slice = min(max(prepared.start_slice, 0), case.n_slices - 1)
        self.cursor = prepared.start_cursor
        for channel, window in prepared.windows.items():
            if channel not in self._user_windows:
                self.windows[channel] = window
        if entry.n_slices != case.n_slices:
            entry.n_slices = case.n_slices
            self.entry_changed.emit(index)
        self.case_changed.emit()
        self.cursor_changed.emit()
        self.mask_changed.emit()

    # -- slice, cursor, window -----------------------------------------------------------------
    def set_slice(self, z: int) -> None:
        if self.case is None:
            return
        z = min(max(int(z), 0), self.case.n_slices - 1)
        if z != self.slice:
            self.slice = z
            self.slice_changed.emit(z)

    def step_slice(self, step: int) -> None:
        self.set_slice(self.slice + step)

    def set_cursor(self, yx: tuple[int, int] | None) -> None:
        """Cursor at row ``y``, column ``x`` of the current slice (None: off the image)."""
        case = self.case
        if yx is not None and case is not None:
            y, x = int(yx[0]), int(yx[1])
            inside = 0 <= y < case.shape[1] and 0 <= x < case.shape[2]
            yx = (y, x) if inside else None
        if yx != self.cursor:
            self.cursor = yx
            self.cursor_changed.emit()

    def cursor_values(self) -> dict[str, float]:
        """Each channel's value under the cursor (empty off the image)."""
        if self.case is None or self.cursor is None:
            return {}
        y, x = self.cursor
        scales = self.case.value_scales
        return {
            c: float(self.case.channels[c][self.slice, y, x]) * scales.get(c, 1.0) for c in CHANNELS
        }

    def cursor_mm(self) -> tuple[float, float, float] | None:
        """Scanner position (mm) of the cursor voxel through the affine (voxel i, j, k = x, y, z)."""
        if self.case is None or self.cursor is None:
            return None
        y, x = self.cursor
        point = self.case.affine @ np.array([x, y, self.slice, 1.0])
        return float(point[0]), float(point[1]), float(point[2])

    def set_window(self, channel: str, width: float, level: float) -> None:
        """A user window: kept across cases until ``reset_windows``."""
        window = (max(float(width), 1e-6), float(level))
        self._user_windows.add(channel)
        if self.windows.get(channel) != window:
            self.windows[channel] = window
            self.window_changed.emit(channel)

    def reset_windows(self) -> None:
        self._user_windows.clear()
        if self.prepared is None:
            return
        for channel, window in self.prepared.windows.items():
            self.windows[channel] = window
            self.window_changed.emit(channel)

    # -- layers --------------------------------------------------------------------------------
    def set_layer(
        self,
        name: str,
        *,
        visible: bool | None = None,
        opacity: float | None = None,
        contour: bool | None = None,
    ) -> None:
        layer = self.layers[name]
        changes = {"visible": visible, "opacity": opacity, "contour": contour}
        changes = {k: v for k, v in changes.items() if v is not None}
        if "opacity" in changes:
            changes["opacity"] = min(max(float(changes["opacity"]), 0.0), 1.0)
        if any(getattr(layer, k) != v for k, v in changes.items()):
            self.layers[name] = replace(layer, **changes)
            self.layer_changed.emit(name)

    def set_overlay_style(
        self, *, contour_width: int | None = None, on_ct_only: bool | None = None
    ) -> None:
        """How every layer is drawn: contour thickness (1 to ``MAX_CONTOUR_WIDTH`` pixels) and
        whether overlays are drawn on the CT pane only; ``overlay_style_changed`` on change."""
        width = self.contour_width if contour_width is None else int(contour_width)
        width = min(max(width, 1), MAX_CONTOUR_WIDTH)
        ct_only = self.overlays_on_ct_only if on_ct_only is None else bool(on_ct_only)
        if (width, ct_only) != (self.contour_width, self.overlays_on_ct_only):
            self.contour_width, self.overlays_on_ct_only = width, ct_only
            self.overlay_style_changed.emit()

    def layer_data(self, name: str) -> np.ndarray | None:
        """The current case's ``(z, y, x)`` array for layer ``name``, None when it has none."""
        case = self.case
        if case is None:
            return None
        if name == "truth":
            return case.mask
        if name == "corrected":
            return self.corrected.get(case.key)
        if name in MEASURED_LAYERS:
            return self._measured.get(case.key, {}).get(name)
        cache_key = (case.key, name)
        if cache_key not in self._derived:
            self._derived[cache_key] = self._prediction_layer(case.key, name)
        return self._derived[cache_key]

    def _prediction_layer(self, key: str, name: str) -> np.ndarray | None:
        prediction = self.predictions.get(key)
        if prediction is None:
            return None
        if name in ("focal", "ce"):
            return prediction.mask(name) if name in prediction.sources else None
        if name == "mean":
            return prediction.mean("all")
        if name == "uncertainty":
            return prediction.uncertainty
        if name == "difference":
            from strokelens.core.comparison import difference_labels

            return difference_labels(prediction)
        raise KeyError(name)

    def set_measured_layers(
        self, case_key: str, layers: dict[str, np.ndarray | None] | None
    ) -> None:
        """The ``MEASURED_LAYERS`` arrays of a case (a None array: the case has none; None:
        forget them)."""
        if layers is None:
            self._measured.pop(case_key, None)
        else:
            self._measured[case_key] = {name: layers[name] for name in MEASURED_LAYERS}
        case = self.case
        if case is not None and case.key == case_key:
            for name in MEASURED_LAYERS:
                self.layer_data_changed.emit(name, None)

    # -- predictions and masks (the seam for inference and editing) ----------------------------
    def set_prediction(self, case_key: str, prediction: Prediction) -> None:
        """Store (or refresh, for a prediction still filling) the ensemble's answer for a case.

        ``prediction`` is a :class:`strokelens.core.prediction.Prediction`: ``mask(source)``,
        ``mean(source)``, ``sources`` and ``uncertainty``, all ``(z, y, x)``. A partial one
        (``done`` not all set) is drawn as it grows; the case becomes "predicted", with its core
        volume, once the prediction is complete.
        """
        index = self.index_of(case_key)
        case = self.case
        if case is not None and case.key == case_key and prediction.shape != case.shape:
            raise ValueError(f"prediction shape {prediction.shape} differs from {case.shape}")
        self.predictions[case_key] = prediction
        for name in PREDICTION_LAYERS:
            self._derived.pop((case_key, name), None)
        entry = self.entries[index]
        if prediction.complete:
            entry.core_ml = volume_ml(prediction.mask("all"), prediction.spacing)
            entry.progress = entry.partial = None
            if entry.status is Status.NEW:
                entry.status = Status.PREDICTED
            self.entry_changed.emit(index)
        else:
            self._set_partial(index, (int(prediction.done.sum()), prediction.done.size))
        if case is not None and case.key == case_key:
            for name in PREDICTION_LAYERS:
                self.layer_data_changed.emit(name, None)
            self.mask_changed.emit()

    def drop_predictions(self) -> None:
        """Forget the predictions held: another ensemble is active and they are the old one's
        (the prediction cache keeps them under its fingerprint). Their cases are not predicted
        until the new ensemble's cache index or run says so; corrections stay."""
        dropped, self.predictions = self.predictions, {}
        case = self.case
        for key in dropped:
            for name in PREDICTION_LAYERS:
                self._derived.pop((key, name), None)
            index = self.index_of(key)
            entry = self.entries[index]
            entry.core_ml = entry.partial = entry.progress = None
            entry.cached = False
            if entry.status is Status.PREDICTED:
                entry.status = Status.NEW
            self.entry_changed.emit(index)
        if case is not None and case.key in dropped:
            for name in PREDICTION_LAYERS:
                self.layer_data_changed.emit(name, None)
            self.mask_changed.emit()

    def _set_partial(self, index: int, partial: tuple[int, int] | None) -> None:
        entry = self.entries[index]
        if entry.partial != partial:
            entry.partial = partial
            self.entry_changed.emit(index)

    def predicted(self, case_key: str) -> bool:
        """A complete prediction of the case is here or waits in the prediction cache."""
        prediction = self.predictions.get(case_key)
        if prediction is not None:
            return prediction.complete
        return self.entries[self.index_of(case_key)].cached

    def set_cached(
        self, case_key: str, done: int = 0, slices: int = 0, core_ml: float | None = None
    ) -> None:
        """What the prediction cache holds for a case not loaded yet: ``done`` of ``slices``
        (complete: the case is "predicted", with ``core_ml``); 0 of 0: nothing (a stale index
        entry, or another ensemble's cache)."""
        if case_key in self.predictions:
            return  # the loaded prediction knows better
        index = self.index_of(case_key)
        entry = self.entries[index]
        complete = slices > 0 and done == slices
        if complete:
            entry.cached, entry.partial, entry.core_ml = True, None, core_ml
            if entry.status is Status.NEW:
                entry.status = Status.PREDICTED
        else:
            if entry.cached and entry.status is Status.PREDICTED:
                entry.status = Status.NEW
            entry.cached, entry.core_ml = False, None
            entry.partial = (done, slices) if 0 < done < slices else None
        self.entry_changed.emit(index)

    def set_doubt(self, case_key: str, doubt: float | None) -> None:
        """A case's doubt score (``app.ranking_session``; None: no complete prediction)."""
        index = self.index_of(case_key)
        if self.entries[index].doubt != doubt:
            self.entries[index].doubt = doubt
            self.entry_changed.emit(index)

    def set_error(self, case_key: str, error: str | None) -> None:
        """Why a case cannot be read (None: it can); next/previous case skip it."""
        index = self.index_of(case_key)
        entry = self.entries[index]
        if entry.error != error:
            entry.error = error
            self.entry_changed.emit(index)

    def set_unsaved(self, case_key: str, unsaved: bool) -> None:
        """Whether the case's correction has edits the project does not hold yet."""
        index = self.index_of(case_key)
        if self.entries[index].unsaved != unsaved:
            self.entries[index].unsaved = unsaved
            self.entry_changed.emit(index)

    def set_review(self, case_key: str, status: Status, reviewer: str | None = None) -> None:
        """A case's review status (and its approving reviewer) as the project records it."""
        index = self.index_of(case_key)
        entry = self.entries[index]
        status = Status(status)
        if (entry.status, entry.reviewer) != (status, reviewer):
            entry.status, entry.reviewer = status, reviewer
            self.entry_changed.emit(index)

    def set_progress(self, case_key: str, fraction: float | None) -> None:
        """The AI's progress on a case (None: not running on it), for the case browser."""
        index = self.index_of(case_key)
        entry = self.entries[index]
        if entry.progress != fraction:
            entry.progress = fraction
            self.entry_changed.emit(index)

    def set_corrected(self, case_key: str, mask: np.ndarray | None) -> None:
        """The reviewer's mask of a case (None removes it); it outranks every other mask."""
        if mask is None:
            self.corrected.pop(case_key, None)
        else:
            self.corrected[case_key] = np.asarray(mask, dtype=np.uint8)
        case = self.case
        if case is not None and case.key == case_key:
            self.layer_data_changed.emit("corrected", None)
            self.mask_changed.emit()

    def corrected_edited(self, case_key: str, region: Region, stroke_ended: bool = True) -> None:
        """The reviewer's mask of ``case_key`` (the array in ``corrected``) changed in
        ``region``; ``mask_changed`` (numbers, comparisons) only once the stroke has ended."""
        case = self.case
        if case is None or case.key != case_key:
            return
        self.layer_data_changed.emit("corrected", region)
        if stroke_ended:
            self.mask_changed.emit()

    def ai_core(self) -> AiCore | None:
        """The AI core of the current case: corrected (approved when the project says so and no
        edit is unsaved) > ensemble (complete or not); None without either, whatever ground
        truth the case has (a training case before Run AI has no AI core)."""
        case = self.case
        if case is None:
            return None
        prediction = self.predictions.get(case.key)
        corrected = self.corrected.get(case.key)
        if corrected is not None:
            entry = self.entries[self.index]
            approved = entry.status is Status.APPROVED and not entry.unsaved
            kind = CoreKind.APPROVED if approved else CoreKind.CORRECTED
            return AiCore(kind, corrected, prediction)
        if prediction is not None:
            return AiCore(CoreKind.ENSEMBLE, None, prediction)
        return None

    # -- 4D series -----------------------------------------------------------------------------
    def set_perfusion(self, series: PerfusionSeries) -> None:
        """Keep the 4D series of the current case only (a stale one is dropped)."""
        if self.case is not None and series.case_key == self.case.key:
            self.perfusion = series
            self.perfusion_changed.emit()

    def curve_at_cursor(self, radius: int = 2) -> np.ndarray | None:
        """Mean time-density curve (HU) of the ``2 radius + 1`` square around the cursor: one
        low-dose CTP voxel is too noisy to read a curve from."""
        if self.perfusion is None or self.cursor is None:
            return None
        y, x = self.cursor
        patch = self.perfusion.series[
            :, self.slice, max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1
        ]
        return patch.mean(axis=(1, 2))


@dataclass
class RecentList:
    """Most-recent-first unique paths, at most ``limit`` (kept in QSettings by the window)."""

    paths: list[str] = field(default_factory=list)
    limit: int = 8

    def add(self, path: str) -> None:
        self.paths = [path, *(p for p in self.paths if p != path)][: self.limit]
