"""Correcting the core mask: the active tool, the brush, the constraints and each case's mask with
its undo history; Qt-free.

The reviewer's mask of a case is an ``EditableMask`` (``core.editing``), kept with its history
while the reviewer switches cases; the model's ``corrected`` layer is that very array, so every
pane draws what is painted. A paint stroke is one undo item: while it runs, the panes hear of
each stamped region, and the numbers (``mask_changed``: the mismatch panel, the compare dock) once,
when it ends. Gestures arrive in voxel coordinates of the slice on screen, voxel ``(i, j)``'s centre
at ``(i, j)`` (``press``, ``drag``, ``release``, ``abort``); the window and the panes turn mouse
and keys into these calls.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
from psygnal import Signal

from strokelens.app.model import Model
from strokelens.core.comparison import AGREE, CE_ONLY, FOCAL_ONLY
from strokelens.core.editing.masks import (
    MAX_RADIUS_MM,
    MIN_RADIUS_MM,
    Brush,
    CtRange,
    EditableMask,
    EditInputs,
    InsideBrain,
    InsideMask,
    ProbabilityAbove,
    RcbfBelow,
    TmaxAbove,
    allowed,
)
from strokelens.core.errors import StrokeLensError
from strokelens.core.metrics import volume_ml
from strokelens.core.mismatch import BRAIN_HU

if TYPE_CHECKING:
    from strokelens.core.case import Case
    from strokelens.core.editing.history import Region


def _components():
    """``core.editing.components``, imported on first use: it imports scipy, which the window
    does not wait for at launch (the window warms it in a worker once a case is shown)."""
    from strokelens.core.editing import components

    return components


class Tool(StrEnum):
    NAVIGATE = "navigate"
    BRUSH = "brush"
    ERASER = "eraser"
    FILL = "fill"
    PICK = "pick"  # accept or reject a connected component


#: What a correction can start from (``start_from``), in the words the menus show.
START_SOURCES = {
    "all": "AI ensemble (all members)",
    "focal": "Focal ensemble",
    "ce": "CE ensemble",
    "truth": "Ground truth",
    "empty": "Empty",
}
#: Constraints offered in the editing panel (name -> rule and label); any combination applies.
CONSTRAINTS = {
    "tmax": (TmaxAbove(6.0), "Tmax > 6 s"),
    "rcbf": (RcbfBelow(0.3), "rCBF < 30 % of the healthy side"),
    "ct": (CtRange(*BRAIN_HU), f"CT {BRAIN_HU[0]:g}–{BRAIN_HU[1]:g} HU (no CSF, no bone)"),
    "brain": (InsideBrain(), "Inside the brain"),
    "ai": (InsideMask(), "Inside the AI mask"),
    "probability": (ProbabilityAbove(0.3), "AI probability > 0.3"),
}
DEFAULT_RADIUS_MM = 4.0
#: ``[`` / ``]`` and Shift+wheel change the radius by this factor (fine when small, fast when big).
RADIUS_STEP = 1.25
#: Islands smaller than this are removed by "Remove islands" unless the reviewer says otherwise.
DEFAULT_ISLAND_ML = 0.1
#: Sources "pick" takes a component from, where the correction is empty: first hit wins.
PICK_SOURCES = ("focal", "ce", "all")
DIFFERENCE_WORDS = {AGREE: "focal-and-CE", FOCAL_ONLY: "focal-only", CE_ONLY: "CE-only"}


class EditSession:
    """The correction of ``model``'s cases. Events: ``tool_changed(tool)``,
    ``brush_changed(radius_mm)``, ``constraints_changed()``, ``history_changed()`` (undo/redo
    availability), ``status(text, ms)``."""

    tool_changed = Signal(str)
    brush_changed = Signal(float)
    constraints_changed = Signal()
    history_changed = Signal()
    status = Signal(str, int)

    def __init__(self, model: Model):
        self.model = model
        self.tool = Tool.NAVIGATE
        self.radius_mm = DEFAULT_RADIUS_MM
        self.constraints: set[str] = set()
        self.masks: dict[str, EditableMask] = {}
        self.cases: dict[str, Case] = {}  # the case of each mask (saving one left behind)
        self._started: dict[str, str] = {}  # case key -> what its correction started from
        #: None while editing is allowed, else why not (the project is open read-only elsewhere).
        self.read_only: str | None = None
        #: Cases whose saved correction is being read: not editable until it has arrived.
        self.loading: set[str] = set()
        self._allowed: tuple[tuple, np.ndarray | None] | None = None  # (key, allowed)
        model.dataset_changed.connect(self._forget)

    def _forget(self) -> None:
        self.masks.clear()
        self.cases.clear()
        self._started.clear()
        self._allowed = None
        self.history_changed.emit()

    # -- settings ------------------------------------------------------------------------------
    def set_tool(self, tool: Tool | str) -> None:
        tool = Tool(tool)
        if tool != self.tool:
            self.abort()
            self.tool = tool
            self.tool_changed.emit(tool.value)

    @property
    def paints(self) -> bool:
        """The tool drags a brush (brush, eraser)."""
        return self.tool in (Tool.BRUSH, Tool.ERASER)

    @property
    def edits(self) -> bool:
        """The left mouse button edits (any tool but navigate)."""
        return self.tool is not Tool.NAVIGATE

    def set_radius(self, radius_mm: float) -> None:
        radius = min(max(float(radius_mm), MIN_RADIUS_MM), MAX_RADIUS_MM)
        if radius != self.radius_mm:
            self.radius_mm = radius
            self.brush_changed.emit(radius)

    def step_radius(self, steps: int) -> None:
        self.set_radius(self.radius_mm * RADIUS_STEP**steps)

    def brush(self) -> Brush | None:
        case = self.model.case
        return None if case is None else Brush(self.radius_mm, tuple(case.spacing[1:]))

    def set_constraint(self, name: str, on: bool) -> None:
        if name not in CONSTRAINTS:
            raise KeyError(name)
        if (name in self.constraints) != on:
            (self.constraints.add if on else self.constraints.discard)(name)
            self._allowed = None
            self.constraints_changed.emit()

    def allowed(self) -> np.ndarray | None:
        """Where paint may land on the current case (None: anywhere), cached until the case,
        the constraints or the AI's prediction change."""
        case = self.model.case
        if case is None or not self.constraints:
            return None
        prediction = self.model.predictions.get(case.key)
        done = None if prediction is None else int(prediction.done.sum())
        key = (case.key, tuple(sorted(self.constraints)), id(prediction), done)
        if self._allowed is None or self._allowed[0] != key:
            rules = [CONSTRAINTS[name][0] for name in sorted(self.constraints)]
            try:
                found = allowed(rules, self._inputs(), case.shape)
            except ValueError as exc:  # a rule needs what this case lacks (no AI yet, say)
                raise StrokeLensError(f"Constraint not usable on {case.key}: {exc}") from None
            self._allowed = (key, found)
        return self._allowed[1]

    def _inputs(self) -> EditInputs:
        case = self.model.case
        assert case is not None
        maps = {c: case.physical(c) for c in ("CT", "CBF", "Tmax")}
        brain = np.zeros(case.shape, bool)
        for channel in ("CBF", "CBV", "MTT", "Tmax"):
            brain |= case.channels[channel] != 0  # the maps are 0 off the brain
        prediction = self.model.predictions.get(case.key)
        complete = prediction is not None and prediction.complete
        return EditInputs(
            ct=maps["CT"],
            cbf=maps["CBF"],
            tmax=maps["Tmax"],
            brain=brain,
            ai_mask=prediction.mask("all") if complete else None,  # type: ignore[union-attr]
            probability=prediction.mean("all") if complete else None,  # type: ignore[union-attr]
        )

    # -- the mask of the current case ----------------------------------------------------------
    def current(self) -> EditableMask | None:
        case = self.model.case
        return None if case is None else self.masks.get(case.key)

    def has_edits(self) -> bool:
        """The current case has a correction with something to lose (an undo item)."""
        mask = self.current()
        return mask is not None and mask.can_undo

    def _mask(self) -> EditableMask:
        """The current case's mask, created on the first edit: from what the model already
        holds as corrected, else the AI ensemble when it is complete, else empty."""
        case = self.model.case
        assert case is not None
        mask = self.masks.get(case.key)
        if mask is None:
            start, source = self.model.corrected.get(case.key), "corrected"
            if start is None:
                start, source = self._source("all"), "all"
            if start is None:
                start, source = np.zeros(case.shape, np.uint8), "empty"
            mask = self._keep(case, start, source)
        return mask

    def _keep(self, case: Case, start: np.ndarray, source: str) -> EditableMask:
        mask = EditableMask(np.array(start, np.uint8), case.spacing)
        key = case.key
        mask.changed.connect(lambda region: self._changed(key, mask, region))
        self.masks[key], self.cases[key], self._started[key] = mask, case, source
        self.model.set_corrected(key, mask.data)
        return mask

    def adopt(self, key: str, saved: np.ndarray, replace: bool = False) -> None:
        """The saved correction of the case on screen becomes its mask (nothing to undo, nothing
        unsaved); ``replace``: over an existing one (an import), as one undo item."""
        case = self.model.case
        if case is None or case.key != key:
            return
        mask = self.masks.get(key)
        if mask is None:
            self._keep(case, saved, "saved")
        elif replace:
            mask.apply(saved, "import")
            mask.mark_saved()
        self.history_changed.emit()

    def started_from(self, key: str) -> str | None:
        """What the correction of ``key`` started from (a source of ``START_SOURCES``, "saved"
        or "corrected"), for the project's record."""
        return self._started.get(key)

    def _editable(self) -> bool:
        """Whether the case on screen may be edited now; says why not."""
        case = self.model.case
        if case is None:
            return False
        if self.read_only is not None:
            self.status.emit(f"Editing is off: {self.read_only}", 8000)
            return False
        if case.key in self.loading:
            self.status.emit("Reading the saved correction of this case…", 3000)
            return False
        return True

    def _changed(self, key: str, mask: EditableMask, region: Region) -> None:
        self.model.corrected_edited(key, region, stroke_ended=not mask.stroking)
        if not mask.stroking:
            self.history_changed.emit()

    def _source(self, source: str) -> np.ndarray | None:
        """A mask to start from or pick from (None: the case has none)."""
        case = self.model.case
        assert case is not None
        if source == "empty":
            return np.zeros(case.shape, np.uint8)
        if source == "truth":
            return case.mask
        prediction = self.model.predictions.get(case.key)
        if prediction is None or not prediction.complete or source not in prediction.sources:
            return None
        return prediction.mask(source)

    def start_from(self, source: str) -> bool:
        """Replace the correction by ``source`` (``START_SOURCES``) as one undo item; False when
        the case has no such mask. The window asks first when ``has_edits()``."""
        if not self._editable():
            return False
        new = self._source(source)
        if new is None:
            self.status.emit(f"No {START_SOURCES[source].lower()} mask on this case.", 5000)
            return False
        self._mask().apply(new, f"start from {START_SOURCES[source].lower()}")
        self.history_changed.emit()
        return True

    # -- gestures ------------------------------------------------------------------------------
    def _voxel(self, y: float, x: float) -> tuple[int, int, int] | None:
        case = self.model.case
        if case is None:
            return None
        iy, ix = int(np.floor(y + 0.5)), int(np.floor(x + 0.5))
        if not (0 <= iy < case.shape[1] and 0 <= ix < case.shape[2]):
            return None
        return self.model.slice, iy, ix

    def press(self, y: float, x: float) -> None:
        """The left button went down at voxel coordinates ``(y, x)`` of the slice on screen."""
        if not self.edits or not self._editable():
            return
        try:
            constraint = self.allowed()
        except StrokeLensError as exc:
            self.status.emit(str(exc), 8000)
            return
        if self.paints:
            mask = self._mask()
            if mask.stroking:
                mask.abort_stroke()
            value = 1 if self.tool is Tool.BRUSH else 0
            mask.begin_stroke(self.model.slice, value, self.brush(), constraint)  # type: ignore[arg-type]
            mask.stroke_to(y, x)
            return
        voxel = self._voxel(y, x)
        if voxel is None:
            return
        if self.tool is Tool.FILL:
            mask = self._mask()
            filled = _components().flood_fill(mask.data, voxel, constraint, per_slice=True)
            self._apply(mask, filled, "fill")
        else:
            self.pick(voxel)

    def drag(self, y: float, x: float) -> None:
        mask = self.current()
        if mask is not None and mask.stroking:
            mask.stroke_to(y, x)

    def release(self) -> None:
        mask = self.current()
        if mask is None or not mask.stroking:
            return
        region = mask.end_stroke()
        if region is not None:
            self.model.corrected_edited(self.model.case.key, region)  # type: ignore[union-attr]
        self.history_changed.emit()

    def abort(self) -> bool:
        """Esc during a stroke: put back what it painted (no undo item). False: no stroke."""
        mask = self.current()
        if mask is None or not mask.stroking:
            return False
        mask.abort_stroke()
        self.history_changed.emit()
        return True

    def pick(self, voxel: tuple[int, int, int]) -> None:
        """Accept or reject a connected component (3D) at ``voxel``.

        With the focal-vs-CE layer shown, the component of its region under the voxel (focal
        only, CE only, agreed) is the unit: removed from the correction when all of it is there,
        else added. Otherwise a component of the correction is removed, and elsewhere the
        component of the first AI mask holding the voxel (focal, CE, all members) is added.
        """
        mask = self._mask()
        region = self._difference_component(voxel)
        if region is not None:
            words, part = region
            self._toggle(mask, part, words, remove=bool(mask.data[part].all()))
            return
        own = _components().component_at(mask.data, voxel)
        if own is not None:
            self._toggle(mask, own, "corrected", remove=True)
            return
        for source in PICK_SOURCES:
            found = self._source(source)
            part = None if found is None else _components().component_at(found, voxel)
            if part is not None:
                self._toggle(mask, part, START_SOURCES[source].lower(), remove=False)
                return
        self.status.emit("No component here in the correction or the AI masks.", 4000)

    def _difference_component(self, voxel: tuple[int, int, int]):
        """(words, component) of the focal-vs-CE region under ``voxel`` when that layer is
        shown and the voxel is in one of its regions, else None."""
        if not self.model.layers["difference"].visible:
            return None
        labels = self.model.layer_data("difference")
        if labels is None or not labels[voxel]:
            return None
        part = _components().component_at(labels == labels[voxel], voxel)
        return DIFFERENCE_WORDS[int(labels[voxel])], part

    def _toggle(self, mask: EditableMask, part: np.ndarray, words: str, remove: bool) -> None:
        new = mask.data.copy()
        new[part] = 0 if remove else 1
        ml = volume_ml(part, self.model.case.spacing)  # type: ignore[union-attr]
        verb, label = ("Removed", "reject component") if remove else ("Added", "accept component")
        self._apply(mask, new, label, f"{verb} a {words} component of {ml:.2f} mL.")

    def _apply(self, mask: EditableMask, new: np.ndarray, label: str, text: str = "") -> None:
        if mask.apply(new, label) is not None and text:
            self.status.emit(text, 5000)

    # -- operations ------------------------------------------------------------------------------
    def undo(self) -> None:
        mask = self.current()
        if mask is not None and mask.can_undo and self._editable():
            mask.undo()

    def redo(self) -> None:
        mask = self.current()
        if mask is not None and mask.can_redo and self._editable():
            mask.redo()

    def remove_islands(self, min_ml: float = DEFAULT_ISLAND_ML) -> None:
        if not self._editable():
            return
        mask = self._mask()
        kept = _components().remove_islands(mask.data, min_ml, mask.spacing)
        removed = int(mask.data.sum() - kept.sum())
        self._apply(mask, kept, "remove islands", f"Removed {removed} voxels in islands.")

    def fill_holes(self) -> None:
        if not self._editable():
            return
        mask = self._mask()
        self._apply(mask, _components().fill_holes(mask.data), "fill holes", "Holes filled.")
