"""The window's menus and editing toolbar: every action with its shortcuts, in the order the F1
dialog lists them.

Shortcuts are window-wide (they work with the menu bar hidden) and single keys never reach a text
field unless the reviewer clicked into it (the window's focus rules). ``named`` holds the actions
other widgets show as buttons (the editing panel's tools, undo and redo).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar

from strokelens.app.edit_session import START_SOURCES, Tool
from strokelens.app.model import CT_PRESETS
from strokelens.app.slice_view import ITKSNAP, STROKELENS
from strokelens.core import ranking

if TYPE_CHECKING:
    from strokelens.app.main_window import MainWindow

#: Slice and case keys per mouse preset (``slice_view``): ITK-SNAP pages through slices and
#: changes case with Ctrl.
NAVIGATION_KEYS = {
    STROKELENS: {
        "next_slice": ("Up",),
        "previous_slice": ("Down",),
        "next_case": ("PgDown", "Ctrl+Down"),
        "previous_case": ("PgUp", "Ctrl+Up"),
    },
    ITKSNAP: {
        "next_slice": ("Up", "PgUp"),
        "previous_slice": ("Down", "PgDown"),
        "next_case": ("Ctrl+PgDown", "Ctrl+Down"),
        "previous_case": ("Ctrl+PgUp", "Ctrl+Up"),
    },
}
#: Editing tools: (tool, menu text, shortcut).
TOOLS = (
    (Tool.NAVIGATE, "&Navigate", "N"),
    (Tool.BRUSH, "&Brush", "B"),
    (Tool.ERASER, "&Eraser", "E"),
    (Tool.FILL, "&Fill", "F"),
    (Tool.PICK, "&Pick component (accept / reject)", "P"),
)


class Menus:
    """Builds ``window``'s menu bar and editing toolbar."""

    def __init__(self, window: MainWindow):
        self.window = window
        self.in_order: list[QAction] = []
        self.named: dict[str, QAction] = {}
        bar = window.menuBar()
        self._file(bar.addMenu("&File"))
        self._case(bar.addMenu("&Case"))
        self._view(bar.addMenu("&View"))
        self._layers(bar.addMenu("&Layers"))
        self._edit(bar.addMenu("&Edit"))
        self._ai(bar.addMenu("&AI"))
        help_menu = bar.addMenu("&Help")
        self.action(help_menu, "&Keyboard shortcuts", window.show_shortcuts, ("F1", "Ctrl+/"))
        self._toolbar()

    def action(
        self,
        menu: QMenu,
        text: str,
        slot: Callable[[], Any],
        keys: tuple[str | QKeySequence.StandardKey, ...] = (),
        checkable: bool = False,
        name: str | None = None,
    ) -> QAction:
        action = QAction(text, self.window)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.window.addAction(action)  # shortcuts work with the menu bar hidden too
        self.in_order.append(action)
        if name is not None:
            self.named[name] = action
        return action

    def _file(self, menu: QMenu) -> None:
        window = self.window
        self.action(menu, "&Open data set…", window.choose_dataset, ("Ctrl+O",))
        self.recent = menu.addMenu("Open &recent")
        menu.addSeparator()
        project = window.project_actions
        self.action(menu, "New or open &project…", project.choose_project, ("Ctrl+Shift+O",))
        self.action(menu, "&Import a mask for this case…", project.choose_import)
        self.action(menu, "&Export corrected masks…", project.choose_export)
        self.action(menu, "Export &report…", window.report.choose, ("Ctrl+Shift+P",))
        menu.addSeparator()
        self.action(menu, "Save &screenshot…", window.choose_screenshot, ("Ctrl+Shift+S",))
        menu.addSeparator()
        self.action(menu, "&Quit", window.close, ("Ctrl+Q",))

    def _navigation(self, menu: QMenu, name: str, text: str, slot: Callable[[], Any]) -> None:
        """A slice or case step, with its keys of the default preset (``set_mouse_preset``)."""
        self.action(menu, text, slot, NAVIGATION_KEYS[STROKELENS][name], name=name)

    def _case(self, menu: QMenu) -> None:
        cases = self.window.cases
        self._navigation(menu, "next_case", "&Next case", lambda: cases.step_case(1))
        self._navigation(menu, "previous_case", "&Previous case", lambda: cases.step_case(-1))
        self.action(menu, "Next most &informative case", self.window.next_informative, ("Ctrl+N",))
        self.action(menu, "&Filter cases", self.window.focus_filter, ("Ctrl+F",))
        menu.addSeparator()
        approve = self.window.project_actions.approve
        self.action(menu, "&Approve this case", approve, ("Ctrl+Return", "Ctrl+Enter"))

    def _view(self, menu: QMenu) -> None:
        window, model = self.window, self.window.model
        self._navigation(menu, "next_slice", "Next slice", lambda: model.step_slice(1))
        self._navigation(menu, "previous_slice", "Previous slice", lambda: model.step_slice(-1))
        self.action(menu, "First slice", lambda: model.set_slice(0), ("Home",))
        self.action(menu, "Last slice", lambda: model.set_slice(10**6), ("End",))
        menu.addSeparator()
        self.action(menu, "&Reset zoom and pan", window.view.reset_view, ("R",))
        self.action(menu, "Reset &window/level", model.reset_windows, ("W",))
        presets = menu.addMenu("CT window presets")
        for n, (name, (width, level)) in enumerate(CT_PRESETS.items(), start=1):
            self.action(
                presets,
                f"CT {name} (W {width:g} L {level:g})",
                lambda w=width, c=level: model.set_window("CT", w, c),
                (f"Alt+{n}",),
            )
        self.action(
            menu, "ITK-SNAP &mouse and keys", window.toggle_mouse_preset, checkable=True,
            name="itksnap",
        )  # fmt: skip
        menu.addSeparator()
        for dock in window.docks.values():
            menu.addAction(dock.toggleViewAction())

    def _layers(self, menu: QMenu) -> None:
        window, model = self.window, self.window.model
        for n, (name, layer) in enumerate(model.layers.items(), start=1):
            self.action(
                menu,
                f"Toggle {layer.title.lower()}",
                lambda n=name: model.set_layer(n, visible=not model.layers[n].visible),
                (str(n),),
            )
        menu.addSeparator()
        self.action(menu, "Filled / contour (all layers)", window.toggle_contours, ("C",))
        self.action(menu, "More opaque", lambda: window.change_opacity(0.1), ("=", "+"))
        self.action(menu, "More transparent", lambda: window.change_opacity(-0.1), ("-",))

    def _edit(self, menu: QMenu) -> None:
        edit = self.window.edit
        group = QActionGroup(self.window)
        for tool, text, key in TOOLS:
            action = self.action(
                menu, text, lambda t=tool: edit.set_tool(t), (key,), checkable=True, name=tool
            )
            action.setChecked(tool is edit.tool)
            group.addAction(action)
        edit.tool_changed.connect(lambda tool: self.named[tool].setChecked(True))
        self.action(menu, "Larger brush", lambda: edit.step_radius(1), ("]",))
        self.action(menu, "Smaller brush", lambda: edit.step_radius(-1), ("[",))
        menu.addSeparator()
        self.action(menu, "&Undo", edit.undo, ("Ctrl+Z",), name="undo")
        self.action(menu, "&Redo", edit.redo, ("Ctrl+Shift+Z", "Ctrl+Y"), name="redo")
        menu.addSeparator()
        start = menu.addMenu("&Start the correction from")
        for source, text in START_SOURCES.items():
            self.action(start, text, lambda s=source: self.window.start_correction(s))
        self.action(menu, "Remove &islands", edit.remove_islands)
        self.action(menu, "Fill &holes", edit.fill_holes)

    def _ai(self, menu: QMenu) -> None:
        window = self.window
        self.action(menu, "Run AI on this &case", window.run_ai_case, ("Ctrl+R",))
        self.action(menu, "Run AI on &all cases", window.run_ai_all, ("Ctrl+Shift+R",))
        self.action(menu, "&Stop the AI (or the paint stroke)", window.escape, ("Esc",))
        menu.addSeparator()
        self.action(menu, "Compare &focal vs CE", window.show_compare, ("Ctrl+E",))
        self.action(menu, "Choose &ensemble…", window.choose_ensemble)
        self._ranking(menu.addMenu("Rank cases &by"))
        menu.addSeparator()
        self.action(menu, "&Retrain with corrections…", window.models.show_retrain)
        self.action(menu, "Model &versions…", window.models.show_versions)

    def _ranking(self, menu: QMenu) -> None:
        """One checkable action per doubt score (``core.ranking``), the one in use checked."""
        doubt, group = self.window.doubt, QActionGroup(self.window)
        for name in ranking.STRATEGIES:
            action = self.action(
                menu,
                f"{name}: {ranking.describe(name)}",
                lambda n=name: doubt.set_strategy(n),
                checkable=True,
                name=f"rank:{name}",
            )
            action.setChecked(name == doubt.strategy)
            group.addAction(action)
        doubt.strategy_changed.connect(lambda name: self.named[f"rank:{name}"].setChecked(True))

    def set_mouse_preset(self, preset: str) -> None:
        """The slice and case keys of ``preset``, and its menu check."""
        for name, keys in NAVIGATION_KEYS[preset].items():
            self.named[name].setShortcuts([QKeySequence(k) for k in keys])
        self.named["itksnap"].setChecked(preset == ITKSNAP)

    def _toolbar(self) -> None:
        toolbar = QToolBar("Editing", self.window)
        toolbar.setObjectName("toolbar-editing")
        for tool, _text, _key in TOOLS:
            toolbar.addAction(self.named[tool])
        toolbar.addSeparator()
        toolbar.addAction(self.named["undo"])
        toolbar.addAction(self.named["redo"])
        self.window.addToolBar(toolbar)
