"""The fine-tuning runner without a window: the worker's command line, its JSON lines validated
(a bad one reported, never raised), cancel (SIGTERM, then kill), exit reported."""

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from strokelens.app.retrain_runner import (
    Baseline,
    Done,
    Epoch,
    Error,
    MemberDone,
    RetrainRunner,
    RetrainSpec,
    Start,
    parse_event,
    verdict,
)
from strokelens.app.tasks import Tasks
from strokelens.core.errors import DataError
from strokelens.core.registry import promotion_check

#: Captured from the real worker (retrain branch, before it was merged): a tiny 2-member version,
#: 5 ISLES cases of 4 patients, 4 approved:
#: ``python -m strokelens.training finetune --project P --registry R --epochs 2 --ratio 1
#: --heldout training/case_4 training/case_5 --device cpu --json``.
WORKER_OUTPUT = [
    '{"event": "start", "version": "v0003", "parent": "v0002", "members": ["focal-0", "ce-1"], "epochs": 2, "minutes": null, "train_cases": ["training/case_1", "training/case_2", "training/case_3"], "heldout_cases": ["training/case_4", "training/case_5"], "corrections": ["training/case_1", "training/case_2", "training/case_3"], "original_cases": []}',
    '{"event": "baseline", "member": "focal-0", "heldout_dsc": 0.052203215261295954}',
    '{"event": "baseline", "member": "ce-1", "heldout_dsc": 0.06592162903811001}',
    '{"event": "baseline", "member": "ensemble", "heldout_dsc": 0.06650943999727058}',
    '{"event": "epoch", "member": "focal-0", "epoch": 1, "epochs": 2, "loss": 548.6884155273438, "heldout_dsc": 0.06366047966631909, "elapsed_s": 16.108}',
    '{"event": "epoch", "member": "focal-0", "epoch": 2, "epochs": 2, "loss": 527.1030578613281, "heldout_dsc": 0.06463258998816046, "elapsed_s": 18.971}',
    '{"event": "member_done", "member": "focal-0", "heldout_dsc": 0.06463258998816046}',
    '{"event": "epoch", "member": "ce-1", "epoch": 1, "epochs": 2, "loss": 97.03133646647136, "heldout_dsc": 0.0, "elapsed_s": 2.22}',
    '{"event": "epoch", "member": "ce-1", "epoch": 2, "epochs": 2, "loss": 90.80069732666016, "heldout_dsc": 0.0, "elapsed_s": 7.215}',
    '{"event": "member_done", "member": "ce-1", "heldout_dsc": 0.0}',
    '{"event": "done", "version": "v0003", "before": {"focal-0": 0.052203215261295954, "ce-1": 0.06592162903811001, "ensemble": 0.06650943999727058}, "after": {"focal-0": 0.06463258998816046, "ce-1": 0.0, "ensemble": 0.0629505305280183}, "recommend": false, "duration_s": 37.34, "path": "w/registry/versions/v0003"}',
]
#: The same, SIGTERM after the baseline (exit status 130).
CANCELLED_OUTPUT = [
    '{"event": "start", "version": "v0004", "parent": "v0002", "members": ["focal-0", "ce-1"], "epochs": 2, "minutes": null, "train_cases": ["training/case_1", "training/case_2", "training/case_3"], "heldout_cases": ["training/case_4"], "corrections": ["training/case_1", "training/case_2", "training/case_3"], "original_cases": []}',
    '{"event": "baseline", "member": "focal-0", "heldout_dsc": 0.058394160583941604}',
    '{"event": "baseline", "member": "ce-1", "heldout_dsc": 0.07071622846781506}',
    '{"event": "baseline", "member": "ensemble", "heldout_dsc": 0.06515837104072399}',
    '{"event": "error", "message": "cancelled (SIGTERM); resume with --resume v0004", "cancelled": true, "version": "v0004"}',
]


def run(loop, coroutine):
    return loop.run_until_complete(coroutine)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def tasks(qtbot, loop):
    tasks = Tasks(loop)
    yield tasks
    tasks.close()


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_workers_own_lines_parse_into_a_consistent_run():
    events = [parse_event(line) for line in WORKER_OUTPUT]
    start, done = events[0], events[-1]
    assert isinstance(start, Start) and isinstance(done, Done)
    baselines = {e.member: e.heldout_dsc for e in events if isinstance(e, Baseline)}
    assert baselines == done.before and set(baselines) == {*start.members, "ensemble"}
    for member in start.members:
        epochs = [e for e in events if isinstance(e, Epoch) and e.member == member]
        assert [e.epoch for e in epochs] == list(range(1, start.epochs + 1))
        (finished,) = [e for e in events if isinstance(e, MemberDone) and e.member == member]
        assert finished.heldout_dsc == epochs[-1].heldout_dsc == done.after[member]
    assert done.recommend is promotion_check(done.before, done.after, start.members)[0]
    assert verdict(done, len(start.heldout_cases), start.members)[0] is done.recommend
    error = parse_event(CANCELLED_OUTPUT[-1])
    assert isinstance(error, Error) and error.cancelled  # a cancel, not a failure
    assert error.version == parse_event(CANCELLED_OUTPUT[0]).version  # resumable


def test_keys_the_protocol_may_add_later_are_ignored():
    event = parse_event('{"event": "member_done", "member": "m", "heldout_dsc": 0.5, "new": 1}')
    assert isinstance(event, MemberDone) and event.heldout_dsc == 0.5


def test_the_command_line_says_what_the_dialog_chose(tmp_path):
    spec = RetrainSpec(
        tmp_path, ("focal-fold1", "ce-fold2"), minutes=2.5, ratio=0.5,
        heldout=("training/case_3",), device="cuda:1",
    )  # fmt: skip
    argv = spec.argv("py")
    assert argv[:4] == ["py", "-m", "strokelens.training", "finetune"]
    assert argv[argv.index("--project") + 1] == str(tmp_path)
    assert argv[argv.index("--members") + 1 : argv.index("--minutes")] == [
        "focal-fold1",
        "ce-fold2",
    ]
    assert argv[argv.index("--minutes") + 1] == "2.5" and "--epochs" not in argv
    assert argv[argv.index("--heldout") + 1] == "training/case_3"
    assert argv[-3:] == ["--device", "cuda:1", "--json"]
    assert "--members" not in RetrainSpec(tmp_path, epochs=2).argv()  # all members
    mixed = RetrainSpec(tmp_path, epochs=1, ratio=1.0, originals_from=tmp_path / "site-a")
    assert mixed.argv()[mixed.argv().index("--originals-from") + 1] == str(tmp_path / "site-a")
    unmixed = RetrainSpec(tmp_path, epochs=1, originals_from=tmp_path / "site-a").argv()
    assert "--originals-from" not in unmixed  # corrections only: nothing is mixed in
    assert "--relative" not in mixed.argv()
    relative = RetrainSpec(
        tmp_path, epochs=1, ratio=1.0, originals_from=tmp_path / "site-a", relative=True
    ).argv()
    assert "--relative" in relative and relative[-3:] == ["--device", "cpu", "--json"]
    resume = RetrainSpec(tmp_path, resume="v0004", registry=tmp_path / "r").argv("py")
    assert resume[4:] == ["--project", str(tmp_path), "--registry", str(tmp_path / "r"),
                          "--resume", "v0004", "--device", "cpu", "--json"]  # fmt: skip
    with pytest.raises(ValueError, match="no version name"):
        RetrainSpec(tmp_path, resume="../v1")
    with pytest.raises(ValueError, match="one of them"):
        RetrainSpec(tmp_path, epochs=2, minutes=1.0)
    with pytest.raises(ValueError, match="start with '-'"):
        RetrainSpec(tmp_path, epochs=1, heldout=("--device",))


@pytest.mark.parametrize(
    "line, problem",
    [
        ("not json", "not a JSON line"),
        ('{"event": "epoch", "member": "../../x", "epoch": 1, "loss": 0.1, '
         '"heldout_dsc": 0.5, "elapsed_s": 1.0}', "cannot be part of a file name"),
        ('{"event": "epoch", "member": "m", "epoch": 1, "loss": NaN, '
         '"heldout_dsc": 0.5, "elapsed_s": 1.0}', "NaN is not a JSON number"),
        ('{"event": "baseline", "member": "m", "heldout_dsc": 1.5}', "heldout_dsc"),
        ('{"event": "rm -rf", "message": "x"}', "event"),
        ('{"event": "error", "message": 3}', "message"),
        ('{"event": "error", "message": "x", "message": "y"}', "duplicate key"),
    ],
)  # fmt: skip
def test_a_line_that_does_not_fit_its_schema_is_a_data_error(line, problem):
    with pytest.raises(DataError, match=problem):
        parse_event(line)


def test_events_of_a_run_and_its_exit_arrive_in_order(loop, tasks, tmp_path):
    lines = [
        '{"event": "epoch", "member": "focal-fold1", "epoch": 1, "epochs": 2, "loss": 0.3, '
        '"heldout_dsc": 0.5, "elapsed_s": 0.1}',
        "garbage that is no JSON",
        "x" * 70_000,  # longer than a line may be
        '{"event": "done", "version": "v0002", "before": {"ensemble": 0.5}, '
        '"after": {"ensemble": 0.55}, "recommend": true, "duration_s": 1.0}',
    ]
    code = "import sys\nfor line in sys.argv[1:]: print(line)\nsys.stderr.write('noise\\n')"
    runner = RetrainRunner(tasks)
    events, problems, reported = [], [], []
    runner.event.connect(events.append)
    runner.problem.connect(problems.append)
    tasks.failed.connect(lambda exc, _act: reported.append(exc))
    outcome = run(loop, runner.run(RetrainSpec(tmp_path, epochs=1), [*python(code), *lines]))
    assert [type(e) for e in events] == [Epoch, Done]
    assert outcome.ok and outcome.returncode == 0 and outcome.done == events[-1]
    assert len(problems) == 2 and "not a JSON line" in problems[0] and "longer" in problems[1]
    assert [str(exc) for exc in reported] == problems  # logged and in the status bar
    assert not runner.running


def test_an_error_line_and_a_crash_are_reported_with_their_reason(loop, tasks, tmp_path):
    runner = RetrainRunner(tasks)
    spec = RetrainSpec(tmp_path, epochs=1)
    error = 'print(\'{"event": "error", "message": "no approved corrections"}\'); exit(2)'
    outcome = run(loop, runner.run(spec, python(error)))
    assert outcome.error == "no approved corrections" and outcome.returncode == 2
    outcome = run(loop, runner.run(spec, python("import sys; sys.exit('out of memory')")))
    assert not outcome.ok and "exit status 1" in outcome.error and "out of memory" in outcome.error
    outcome = run(loop, runner.run(spec, python("pass")))
    assert outcome.error == "The fine-tuning worker ended without a result."


def test_cancel_terminates_and_a_worker_that_ignores_it_is_killed(loop, tasks, tmp_path):
    spec = RetrainSpec(tmp_path, epochs=1)
    for code, grace in (
        ("import time; print('{}', flush=True); time.sleep(60)", 30.0),  # stops on SIGTERM
        ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('{}', flush=True); time.sleep(60)", 0.3),  # must be killed
    ):  # fmt: skip
        runner = RetrainRunner(tasks, grace_s=grace)
        runner.problem.connect(lambda _text, r=runner: r.cancel())  # "{}" is no event: cancel
        task = tasks.spawn(runner.run(spec, python(code)))
        outcome = run(loop, task)
        assert outcome.cancelled and outcome.error is None and outcome.returncode < 0
        assert not runner.running


DONE = (
    '{"event": "done", "version": "v0002", "before": {"ensemble": 0.5}, '
    '"after": {"ensemble": 0.55}, "recommend": true, "duration_s": 1.0}'
)


def test_a_cancel_that_comes_too_late_leaves_the_finished_version_finished(loop, tasks, tmp_path):
    spec = RetrainSpec(tmp_path, epochs=1)
    late = f"import time; print({DONE!r}, flush=True); time.sleep(1)"  # exits by itself
    racing = (  # finishes while the SIGTERM is on its way
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (print({DONE!r}, flush=True), sys.exit(0)))\n"
        "print('{}', flush=True); time.sleep(60)"
    )
    for code in (late, racing):
        runner = RetrainRunner(tasks, grace_s=30.0)
        runner.event.connect(lambda _event, r=runner: r.cancel())  # cancel once it is done
        runner.problem.connect(lambda _text, r=runner: r.cancel())  # "{}": cancel mid-run
        outcome = run(loop, runner.run(spec, python(code)))
        assert outcome.ok and not outcome.cancelled and outcome.returncode == 0
        assert outcome.done.version == "v0002"


def test_a_second_run_while_one_goes_is_refused(loop, tasks, tmp_path):
    runner = RetrainRunner(tasks)
    spec = RetrainSpec(tmp_path, epochs=1)
    first = tasks.spawn(runner.run(spec, python("import time; time.sleep(60)")))
    run(loop, _until(lambda: runner.running))
    pid = runner.pid
    with pytest.raises(Exception, match="going already"):
        run(loop, runner.run(spec, python("pass")))
    runner.cancel()
    assert run(loop, first).cancelled and not alive(pid)


async def _until(condition, timeout_s: float = 10.0):
    import asyncio

    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError


def test_promotion_is_recommended_only_when_held_out_dsc_did_not_drop():
    def done(before, after, recommend=True, members=None):
        members = members or {}
        return Done(
            event="done", version="v0002", before={"ensemble": before, **{m: b for m, (b, _) in members.items()}},
            after={"ensemble": after, **{m: a for m, (_, a) in members.items()}},
            recommend=recommend, duration_s=1.0,
        )  # fmt: skip

    ok, why = verdict(done(0.6, 0.6), 3, [])
    assert ok and "may be chance" in why  # 3 cases: the advice says how little it rests on
    ok, why = verdict(done(0.6, 0.6), 5, [])
    assert ok and why.startswith("Recommended") and "chance" not in why
    ok, why = verdict(done(0.6, 0.59), 3, [])
    assert not ok and "0.600 → 0.590 (dropped)" in why
    assert not verdict(done(0.6, 0.7, recommend=False), 3, [])[0]  # the worker disagrees
    assert not verdict(done(0.6, 0.7), 0, [])[0]  # nothing held out: no verdict
    # the ensemble held, but the two fine-tuned members got worse: eight unchanged hid them
    hidden = done(0.70, 0.70, members={"f1": (0.66, 0.60), "c1": (0.65, 0.62), "f2": (0.6, 0.6)})
    ok, why = verdict(hidden, 3, ["f1", "c1"])
    assert not ok and "0.700 → 0.700," in why  # the ensemble did not drop: not marked
    assert "members' mean 0.655 → 0.610 (dropped)" in why and "f1, c1" in why
    assert verdict(hidden, 3, ["f2"])[0]  # only an unchanged member was fine-tuned
    one_up_one_down = done(0.70, 0.71, members={"f1": (0.60, 0.66), "c1": (0.65, 0.62)})
    members_up = done(0.068, 0.067, members={"f1": (0.046, 0.071), "c1": (0.061, 0.059)})
    ok, why = verdict(members_up, 1, ["f1", "c1"])  # says which figure dropped: the ensemble's
    assert not ok and "0.068 → 0.067 (dropped), " in why and "0.054 → 0.065 (" not in why
    ok, why = verdict(one_up_one_down, 3, ["f1", "c1"])
    assert ok and "(dropped)" not in why and "dropped for c1" in why  # the mean rose
    assert not verdict(done(0.7, 0.7, members={"f1": (0.6, None)}), 3, ["f1"])[0]
