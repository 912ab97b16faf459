"""The window's AI ▸ Retrain with corrections… and AI ▸ Model versions…: one ``Retraining``
controller shared by the two non-modal dialogs. Each is built on first use (their imports are
heavy: the window starts without them) and read again and brought forward when asked again."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strokelens.app.main_window import MainWindow
    from strokelens.app.retrain_dialog import RetrainDialog
    from strokelens.app.retrain_runner import Retraining
    from strokelens.app.versions_dialog import VersionsDialog


class ModelActions:
    def __init__(self, window: MainWindow):
        self.window = window
        self.retraining: Retraining | None = None
        self.retrain_dialog: RetrainDialog | None = None
        self.versions_dialog: VersionsDialog | None = None

    def controller(self) -> Retraining:
        if self.retraining is None:
            from strokelens.app.retrain_runner import Retraining

            w = self.window
            self.retraining = Retraining(w.model, w.project, w.ai, w.tasks)
            self.retraining.status.connect(w.show_status)
        return self.retraining

    def show_retrain(self) -> None:
        """The retrain dialog, its plan (approved corrections, members) read again."""
        if self.retrain_dialog is None:
            from strokelens.app.retrain_dialog import RetrainDialog

            self.retrain_dialog = RetrainDialog(self.controller(), self.window)
        _present(self.retrain_dialog)

    def show_versions(self) -> None:
        """The model versions dialog, the registry read again."""
        if self.versions_dialog is None:
            from strokelens.app.versions_dialog import VersionsDialog

            self.versions_dialog = VersionsDialog(self.controller(), self.window)
        _present(self.versions_dialog)

    def close(self) -> None:
        """Stop a fine-tuning run still going (the window closes)."""
        if self.retraining is not None:
            self.retraining.close()


def _present(dialog: RetrainDialog | VersionsDialog) -> None:
    dialog.refresh()
    dialog.show()
    dialog.raise_()
