"""AI ▸ Retrain with corrections: what a fine-tuning run trains on and is judged by, the run's
live curves, its before/after result and the promotion of its version.

Non-modal: the reviewer keeps reading and correcting while a run goes. Approving and retraining
are separate: nothing starts until Start is pressed, and promoting asks first. The work is
``retrain_runner.Retraining``'s; this shows its plan and events and turns buttons into its calls.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from strokelens.app.retrain_curves import RetrainCurves
from strokelens.app.retrain_runner import (
    Baseline,
    Done,
    Epoch,
    Error,
    MemberDone,
    Retraining,
    RetrainOutcome,
    RetrainPlan,
    RetrainSpec,
    Start,
    verdict,
)
from strokelens.core.errors import StrokeLensError
from strokelens.core.registry import DEFAULT_EPOCHS, DEFAULT_RATIO, ENSEMBLE

WARN_STYLE = "color: #ff8a6a;"
LOOKING = "Looking for GPUs…"
GOOD_STYLE = "color: #7fe08a;"
#: Columns of the patients table.
PATIENT, HELD_OUT, JUDGED, APPROVED = range(4)


def _item(text: str) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


def _dsc(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


class RetrainDialog(QDialog):
    def __init__(self, retraining: Retraining, parent: QWidget | None = None):
        super().__init__(parent)
        self.retraining, self.tasks = retraining, retraining.tasks
        self.setWindowTitle("Retrain with corrections")
        self.setModal(False)
        self.plan: RetrainPlan | None = None
        self.version: str | None = None  # of the run going or last finished
        self.stopped: str | None = None  # a version cancelled or failed here, resumable
        self.heldout_count = 0
        self.trained: list[str] = []  # the members the run fine-tunes (its start event)
        self.confirm_box: QMessageBox | None = None
        self.recommended = False  # the last run's verdict

        self.summary = QLabel("Reading the project…")
        self.summary.setWordWrap(True)
        self.patients = QTableWidget(0, 4)
        self.patients.setHorizontalHeaderLabels(
            ["Patient", "Role", "Cases that can judge", "Approved corrections"]
        )
        self.patients.setToolTip("Tick a patient to hold it out: its cases judge, never train")
        self.patients.verticalHeader().hide()
        self.patients.horizontalHeader().setStretchLastSection(True)
        self.patients.itemChanged.connect(lambda _item: self._update_split())
        self.split = QLabel()
        self.split.setWordWrap(True)
        self.members = QListWidget()
        self.members.setMaximumHeight(110)
        self.members.itemChanged.connect(lambda _item: self._update_split())
        self.budget = QSpinBox()
        self.budget.setRange(1, 10_000)
        self.budget.setValue(DEFAULT_EPOCHS)
        self.unit = QComboBox()
        self.unit.addItems(["epochs", "minutes"])
        self.ratio = QDoubleSpinBox()
        self.ratio.setRange(0.0, 20.0)
        self.ratio.setSingleStep(0.25)
        self.ratio.setSpecialValueText("corrections only")
        self.ratio.setSuffix(" : 1")
        self.ratio.setValue(DEFAULT_RATIO)
        self.ratio.setToolTip(
            "Corrections : original cases of the data set (with their ground truth), mixed in "
            "against forgetting; the lowest value trains on the corrections only"
        )
        self.originals = QComboBox()
        self.originals.setToolTip(
            "Where the original cases mixed in come from: the data the active version was "
            "trained on keeps it from forgetting that site; the project's data set may hold only "
            "the new one"
        )
        self.relative = QCheckBox("relative CBF and CBV (another vendor's scale)")
        self._relative_wanted = True  # measured: docs/retrain.md, step 9
        self.relative.clicked.connect(self._want_relative)
        self.relative.setToolTip(
            "The new version reads CBF and CBV relative to each case's brain, scaled to the site "
            "of the original data: another vendor's absolute values mean something else"
        )
        self.ratio.valueChanged.connect(lambda _v: self._enable_originals())
        self.originals.currentIndexChanged.connect(lambda _i: self._enable_originals())
        self.device = QComboBox()
        self.device.addItem("cpu")
        self.device.setToolTip(LOOKING)
        self.why_not = QLabel()
        self.why_not.setStyleSheet(WARN_STYLE)
        self.why_not.setWordWrap(True)

        budget = QHBoxLayout()
        budget.addWidget(self.budget)
        budget.addWidget(self.unit)
        form = QFormLayout()
        form.addRow("Budget", budget)
        form.addRow("Corrections : original data", self.ratio)
        form.addRow("Original data from", self.originals)
        form.addRow("Inputs", self.relative)
        form.addRow("Device", self.device)
        setup = QGroupBox("What it trains on and what judges it")
        column = QVBoxLayout(setup)
        column.addWidget(self.summary)
        column.addWidget(self.patients, 1)
        column.addWidget(self.split)
        column.addWidget(QLabel("Members to fine-tune"))
        column.addWidget(self.members)
        column.addLayout(form)
        column.addWidget(self.why_not)

        self.curves = RetrainCurves()
        self.progress = QLabel("Not started: press Start when the choice above is right.")
        self.progress.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(90)
        self.results = QTableWidget(0, 4)
        self.results.setHorizontalHeaderLabels(["", "Held-out DSC before", "after", "change"])
        self.results.verticalHeader().hide()
        self.results.horizontalHeader().setStretchLastSection(True)
        self.results.resizeColumnsToContents()
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        run = QGroupBox("Run")
        right = QVBoxLayout(run)
        right.addWidget(self.progress)
        right.addWidget(self.curves, 2)
        right.addWidget(self.log)
        right.addWidget(self.results, 1)
        right.addWidget(self.verdict)

        self.start_button = QPushButton("Start")
        self.start_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel the run")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(retraining.runner.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setEnabled(False)
        self.resume_button.setToolTip("Continue the stopped run with the settings it started with")
        self.resume_button.clicked.connect(self.resume)
        self.promote_button = QPushButton("Promote…")
        self.promote_button.setEnabled(False)
        self.promote_button.clicked.connect(self.ask_promote)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        buttons.addWidget(self.promote_button)
        buttons.addWidget(close)

        body = QHBoxLayout()
        body.addWidget(setup, 2)
        body.addWidget(run, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addLayout(buttons)
        self.resize(1200, 760)

        runner = retraining.runner
        runner.event.connect(self.show_event)
        runner.problem.connect(self._log)
        retraining.activated.connect(self._activated)

    # -- the plan ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the plan (approved cases, members) and the devices again, in the background."""
        self.tasks.spawn(self._fill())
        self.tasks.spawn(self._find_devices())

    async def _fill(self) -> None:
        self.set_plan(await self.retraining.plan())

    async def _find_devices(self) -> None:
        first = self.device.toolTip() == LOOKING
        devices = await self.retraining.devices()
        chosen = self.device.currentText()
        self.device.clear()
        self.device.addItems(list(devices))
        if first or chosen not in devices:  # a GPU when there is one, else the CPU
            chosen = devices[1] if len(devices) > 1 else devices[0]
        self.device.setCurrentText(chosen)
        self.device.setToolTip(", ".join(devices))

    def set_plan(self, plan: RetrainPlan) -> None:
        self.plan = plan
        if self.version is None and self.stopped is None and plan.staged:
            self.stopped = plan.staged[-1]  # as 'finetune --resume latest'
            self.progress.setText(
                f"Version {self.stopped} was started and not finished (stopped, closed during "
                "its run, or running elsewhere): Resume continues it from its last finished "
                "epoch."
            )
        patients = [p for p in plan.patients if p.approved]
        self.summary.setText(
            f"Fine-tunes version {plan.parent} ({len(plan.members)} members) with "
            f"{plan.approved} approved correction(s) of {len(patients)} patient(s)."
            if plan.approved
            else f"Version {plan.parent}: no approved corrections in this project yet."
        )
        self.patients.blockSignals(True)
        self.patients.setRowCount(len(plan.patients))
        for row, patient in enumerate(plan.patients):
            self.patients.setItem(row, PATIENT, _item(patient.patient))
            approved = f"{len(patient.approved)}: {', '.join(patient.approved)}"
            self.patients.setItem(row, APPROVED, _item(approved if patient.approved else "—"))
            self.patients.setItem(row, JUDGED, _item(str(len(patient.judged))))
            held = _item("")
            held.setToolTip("held out: judges the run, never trained on")
            held.setFlags(held.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = patient.patient in plan.heldout
            held.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.patients.setItem(row, HELD_OUT, held)
        self.patients.resizeColumnsToContents()
        self.patients.blockSignals(False)
        self.originals.clear()
        if plan.originals is not None:
            self.originals.addItem("the active version's training data", plan.originals)
            self.originals.setItemData(0, str(plan.originals), Qt.ItemDataRole.ToolTipRole)
        self.originals.addItem("the project's data set", None)
        self.members.clear()
        for name in plan.members:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.members.addItem(item)
        self._update_split()

    def heldout_patients(self) -> list[str]:
        return [
            self.patients.item(row, PATIENT).text()
            for row in range(self.patients.rowCount())
            if self.patients.item(row, HELD_OUT).checkState() == Qt.CheckState.Checked
        ]

    def set_heldout(self, patient: str, held_out: bool) -> None:
        """Hold ``patient`` out (or train on it), as a click on its box does."""
        for row in range(self.patients.rowCount()):
            if self.patients.item(row, PATIENT).text() == patient:
                state = Qt.CheckState.Checked if held_out else Qt.CheckState.Unchecked
                self.patients.item(row, HELD_OUT).setCheckState(state)

    def _update_split(self) -> None:
        plan = self.plan
        if plan is None:
            return
        heldout = self.heldout_patients()
        self.patients.blockSignals(True)
        for row in range(self.patients.rowCount()):
            patient = plan.patients[row]
            role = (
                "held out" if patient.patient in heldout else "trains" if patient.approved else ""
            )
            self.patients.item(row, HELD_OUT).setText(role)
        self.patients.resizeColumnToContents(HELD_OUT)
        self.patients.blockSignals(False)
        train, judged = plan.train_keys(heldout), plan.heldout_keys(heldout)
        self.split.setText(
            f"Trains on {len(train)} case(s); judged on {len(judged)} held-out case(s) of "
            f"{len(heldout)} patient(s), never trained on: {', '.join(judged) or 'none'}."
        )
        why = plan.why_not(heldout)
        if why is None and not judged:
            why = "No held-out case: the run could not be judged. Hold out a patient."
        if why is None and self.spec() is None:
            why = "Tick at least one member to fine-tune."
        self.why_not.setText(why or "")
        self._set_running(self.retraining.runner.running)

    def spec(self) -> RetrainSpec | None:
        """The run as chosen, None when it cannot start."""
        plan = self.plan
        if plan is None or plan.project is None:
            return None
        heldout = self.heldout_patients()
        if plan.why_not(heldout) is not None or not plan.heldout_keys(heldout):
            return None
        members = [
            self.members.item(i).text()
            for i in range(self.members.count())
            if self.members.item(i).checkState() == Qt.CheckState.Checked
        ]
        if not members:
            return None
        epochs = self.unit.currentText() == "epochs"
        return RetrainSpec(
            plan.project,
            members=() if len(members) == len(plan.members) else tuple(members),
            epochs=self.budget.value() if epochs else None,
            minutes=None if epochs else float(self.budget.value()),
            ratio=self.ratio.value() or None,
            originals_from=self.originals.currentData(),
            relative=self.relative.isChecked(),
            heldout=tuple(plan.heldout_keys(heldout)),
            device=self.device.currentText(),
            registry=self.retraining.registry,
        )

    def _enable_originals(self, running: bool = False) -> None:
        """The originals' source only when some are mixed in; relative maps only with the
        reference site's data (the originals from the active version's training data)."""
        mixed = not running and self.ratio.value() > 0
        self.originals.setEnabled(mixed)
        usable = mixed and self.originals.currentData() is not None
        self.relative.setEnabled(usable)
        if not running:  # a box that cannot apply shows unticked, the choice comes back with it
            self.relative.setChecked(usable and self._relative_wanted)

    def _want_relative(self, checked: bool) -> None:
        self._relative_wanted = checked

    # -- the run -------------------------------------------------------------------------------
    def _set_running(self, running: bool) -> None:
        for widget in (
            self.patients,
            self.members,
            self.budget,
            self.unit,
            self.ratio,
        ):
            widget.setEnabled(not running)
        self._enable_originals(running)
        self.device.setEnabled(not running)
        self.start_button.setEnabled(not running and self.spec() is not None)
        self.cancel_button.setEnabled(running)
        self.resume_button.setEnabled(not running and self.stopped is not None)
        self.resume_button.setText("Resume" if self.stopped is None else f"Resume {self.stopped}")

    def start(self) -> None:
        spec = self.spec()
        if spec is None or self.retraining.runner.running:
            return
        self.tasks.spawn(self._run(spec))

    def resume(self) -> None:
        """Continue the version stopped here (its staged settings, this device)."""
        plan, version = self.plan, self.stopped
        if (
            plan is None
            or plan.project is None
            or version is None
            or self.retraining.runner.running
        ):
            return
        spec = RetrainSpec(
            plan.project,
            resume=version,
            device=self.device.currentText(),
            registry=self.retraining.registry,
        )
        self.tasks.spawn(self._run(spec))

    async def _run(self, spec: RetrainSpec) -> None:
        self.version, self.stopped, self.heldout_count = None, None, len(spec.heldout)
        self.trained = []
        self.results.setRowCount(0)
        self.verdict.clear()
        self.recommended = False
        self.log.clear()
        self.promote_button.setEnabled(False)
        self.progress.setText("Starting the fine-tuning worker…")
        self._set_running(True)
        try:
            outcome = await self.retraining.runner.run(spec)
        except StrokeLensError as exc:
            self.progress.setText(str(exc))
            self.progress.setStyleSheet(WARN_STYLE)
            return
        finally:
            self._set_running(False)
        self.show_outcome(outcome)

    def show_event(self, event) -> None:
        """One event of the worker."""
        if isinstance(event, Start):
            self.version = event.version
            self.heldout_count = len(event.heldout_cases)
            self.trained = list(event.members)
            self.curves.start(event.members)
            self.progress.setText(
                f"Version {event.version} from {event.parent}: {len(event.members)} member(s), "
                f"{len(event.train_cases)} training case(s), "
                f"{len(event.heldout_cases)} held-out case(s). Measuring before…"
            )
        elif isinstance(event, Baseline):
            self.curves.baseline(event.member, event.heldout_dsc)
        elif isinstance(event, Epoch):
            self.curves.add_epoch(event.member, event.epoch, event.loss, event.heldout_dsc)
            of = f"/{event.epochs}" if event.epochs else ""
            self.progress.setText(
                f"{event.member}: epoch {event.epoch}{of}, loss {event.loss:.4f}, held-out DSC "
                f"{_dsc(event.heldout_dsc)} ({event.elapsed_s:.0f} s)"
            )
        elif isinstance(event, MemberDone):
            self._log(f"{event.member} done: held-out DSC {_dsc(event.heldout_dsc)}")
        elif isinstance(event, Done):
            self.show_result(event)
        elif isinstance(event, Error):
            self._log(("Cancelled: " if event.cancelled else "Error: ") + event.message)

    def show_result(self, done: Done) -> None:
        """Before/after per member and for the ensemble, and the recommendation."""
        self.version = done.version
        names = [ENSEMBLE, *(m for m in done.after if m != ENSEMBLE)]
        self.results.setRowCount(len(names))
        for row, name in enumerate(names):
            before, after = done.before.get(name), done.after.get(name)
            change = "—" if before is None or after is None else f"{after - before:+.3f}"
            for col, text in enumerate((name, _dsc(before), _dsc(after), change)):
                self.results.setItem(row, col, _item(text))
        self.results.resizeColumnsToContents()
        self.recommended, why = verdict(done, self.heldout_count, self.trained)
        self.verdict.setText(why)
        self.verdict.setStyleSheet(GOOD_STYLE if self.recommended else WARN_STYLE)
        self.promote_button.setEnabled(True)
        self.promote_button.setText(f"Promote {done.version}…")
        self.progress.setText(f"Version {done.version} finished in {done.duration_s:.0f} s.")

    def show_outcome(self, outcome: RetrainOutcome) -> None:
        if not outcome.ok:
            self.stopped = self.version  # staged (None when it stopped before allocating one)
            self._set_running(False)
        if outcome.cancelled:
            kept = f" (version {self.version} stays staged, resumable)" if self.version else ""
            self.progress.setText(f"Cancelled{kept}.")
        elif outcome.error is not None:
            self.progress.setText(f"The run failed: {outcome.error}")
            self.progress.setStyleSheet(WARN_STYLE)
            return
        self.progress.setStyleSheet("")

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)

    # -- promotion -----------------------------------------------------------------------------
    def ask_promote(self) -> None:
        """Promoting asks first; yes makes the version active and Run AI use it."""
        version = self.version
        if version is None:
            return
        self.confirm_box = box = QMessageBox(
            QMessageBox.Icon.Question if self.recommended else QMessageBox.Icon.Warning,
            "Promote",
            f"Make version {version} the active ensemble? Run AI uses it from now on; "
            f"{self.verdict.text()} ('strokelens models rollback' goes back.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )  # against the advice, Enter answers no
        box.setDefaultButton(
            QMessageBox.StandardButton.Yes if self.recommended else QMessageBox.StandardButton.No
        )
        yes = QMessageBox.StandardButton.Yes
        box.buttonClicked.connect(
            lambda button: (
                box.standardButton(button) == yes
                and self.tasks.spawn(self.retraining.activate(version))
            )
        )
        box.open()  # not exec(): never block the loop

    def _activated(self, version: str) -> None:
        """Another version became active (here, or in Model versions): the run's version can be
        promoted unless it is the one."""
        if self.version is None or self.results.rowCount() == 0:
            return  # no finished run shown
        mine = version == self.version
        self.promote_button.setEnabled(not mine)
        self.promote_button.setText(f"{version} is active" if mine else f"Promote {self.version}…")
