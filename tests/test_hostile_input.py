"""Hostile manifests, configs and folder names never make a command write outside its --out.

Each case runs the real command line into a temporary --out and checks: a non-zero exit, one
message that names the file and the problem (no traceback), nothing changed outside --out, and,
for a weight file outside the manifest's folder, the same message whether that file exists or not.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import write_isles_case, write_simple_case

from strokelens.app.cli import build_parser, main
from strokelens.app.commands.app import window_options
from strokelens.core.errors import DataError
from strokelens.core.safepath import path_inside

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Sandbox:
    """A copy of the tiny ensemble, a one-case data set and a weight file outside the ensemble."""

    root: Path
    manifest: Path
    data: Path
    out: Path  # deep, so that "../../../../x" from inside it still lands in ``root``
    outside: Path  # a valid member file (right sha256) outside the manifest's folder

    def edit(self, change: Callable[[dict, Sandbox], None]) -> None:
        data = json.loads(self.manifest.read_text())
        change(data, self)
        self.manifest.write_text(json.dumps(data))

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        """Every path under ``root`` but ``out`` (symlinks not followed): type, and for files
        size and mtime (a folder's entries are in the snapshot; its mtime changes with --out's
        creation)."""
        state = {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if Path(folder, d) != self.out]
            for name in dirs + files:
                st = Path(folder, name).lstat()
                kind = stat.S_IFMT(st.st_mode)
                facts = (kind, 0, 0) if kind == stat.S_IFDIR else (kind, st.st_size, st.st_mtime_ns)
                state[str(Path(folder, name).relative_to(self.root))] = facts
        return state


@pytest.fixture
def box(ensemble, tmp_path) -> Sandbox:
    folder = shutil.copytree(ensemble.parent, tmp_path / "ensemble")
    write_simple_case(tmp_path / "data" / "case_1", shape_xyz=(16, 12, 2))
    outside = tmp_path / "elsewhere" / "member.safetensors"
    outside.parent.mkdir()
    shutil.copy(folder / "focal" / "member_0.safetensors", outside)
    out = tmp_path / "a" / "b" / "c" / "out"
    out.parent.mkdir(parents=True)
    return Sandbox(tmp_path, folder / "ensemble.json", tmp_path / "data", out, outside)


def first(**fields) -> Callable[[dict, Sandbox], None]:
    """Set fields of the first member; a callable value gets the sandbox."""

    def change(data: dict, box: Sandbox) -> None:
        for key, value in fields.items():
            data["members"][0][key] = value(box) if callable(value) else value

    return change


def drop(key: str) -> Callable[[dict, Sandbox], None]:
    return lambda data, box: data["members"][0].pop(key)


def link_member_outside(data: dict, box: Sandbox) -> None:
    """Replace the first member's file (inside the folder) by a symlink to the outside file."""
    inside = box.manifest.parent / data["members"][0]["weights"]
    inside.unlink()
    inside.symlink_to(box.outside)


def escape(box: Sandbox) -> str:
    return str(box.root / "escaped")


OUTSIDE = "is outside the manifest's folder"
NOT_A_NAME = "cannot be part of a file name"

#: (what the manifest does, the words of the expected message)
HOSTILE = {
    "loss traversal": (
        first(loss="../../../../escaped"),
        f"members[0].loss: '../../../../escaped' {NOT_A_NAME}",
    ),
    "loss absolute": (first(loss=escape), NOT_A_NAME),
    "loss backslashes": (first(loss="..\\..\\escaped"), NOT_A_NAME),
    "loss reserved": (first(loss="all"), "members[0].loss: loss 'all' is reserved"),
    "name traversal": (
        first(name="../../../../escaped"),
        f"members[0].name: '../../../../escaped' {NOT_A_NAME}",
    ),
    "name absolute": (first(name=escape), NOT_A_NAME),
    "name dot-dot": (first(name=".."), NOT_A_NAME),
    "name hidden": (first(name=".bashrc"), NOT_A_NAME),
    "name NUL": (first(name="a\x00b"), NOT_A_NAME),
    "name newline": (first(name="a\nb"), NOT_A_NAME),
    "name empty": (first(name=""), NOT_A_NAME),
    "name Windows device": (first(name="CON"), "reserved device name"),
    "name too long": (first(name="a" * 65), "longer than 64"),
    "name duplicate": (first(name="FOCAL-1"), "'FOCAL-1' and 'focal-1': one name, one file"),
    "weights absolute": (first(weights=lambda box: str(box.outside)), OUTSIDE),
    "weights traversal": (first(weights="../elsewhere/member.safetensors"), OUTSIDE),
    "weights symlink out": (link_member_outside, OUTSIDE),
    "sha256 null": (
        first(sha256=None),
        "members[0].sha256: Input should be a valid string, not null",
    ),
    "sha256 missing": (drop("sha256"), "members[0].sha256: required, missing"),
    "sha256 not hex": (first(sha256="z" * 64), "members[0].sha256: String should match pattern"),
    "sha256 number": (
        first(sha256=123),
        "members[0].sha256: Input should be a valid string, not an integer",
    ),
    "name number": (
        first(name=7),
        "members[0].name: Input should be a valid string, not an integer",
    ),
    "name list": (first(name=["a"]), "members[0].name: Input should be a valid string, not a list"),
    "loss object": (
        first(loss={"a": 1}),
        "members[0].loss: Input should be a valid string, not an object",
    ),
    "loss null": (first(loss=None), "members[0].loss: Input should be a valid string, not null"),
    "weights null": (
        first(weights=None),
        "members[0].weights: Input should be a valid string, not null",
    ),
    "weights number": (
        first(weights=1),
        "members[0].weights: Input should be a valid string, not an integer",
    ),
    "fold string": (
        first(fold="1"),
        "members[0].fold: Input should be a valid integer, not a string",
    ),
    "fold boolean": (
        first(fold=True),
        "members[0].fold: Input should be a valid integer, not true/false",
    ),
    "val_dice string": (
        first(val_dice="0.5"),
        "members[0].val_dice: Input should be a valid number, not a string",
    ),
    "unknown key": (first(path="/etc/passwd"), "members[0].path: unknown key"),
    "member not an object": (
        lambda d, b: d["members"].__setitem__(0, "x"),
        "members[0]: Input should be a dictionary or an instance of Member",
    ),
    "members not a list": (
        lambda d, b: d.update(members={"a": 1}),
        "members: Input should be a valid list, not an object",
    ),
}


def command(name: str, box: Sandbox, *extra: str) -> list[str]:
    if name == "predict":
        args = ["predict", str(box.data), "--ensemble", str(box.manifest), "--members"]
        return [*args, "--threads", "1", "--out", str(box.out), *extra]
    return ["export", str(box.manifest), "--out", str(box.out), *extra]


def refused(argv: list[str], box: Sandbox, capsys) -> str:
    """Run ``argv``; check it fails cleanly with nothing written outside --out; its stderr."""
    before = box.snapshot()
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert box.snapshot() == before, "something was written outside --out"
    return err


@pytest.mark.parametrize("cmd", ["predict", "export"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_manifest_is_refused_with_the_file_named(box, cmd, case, capsys):
    change, words = HOSTILE[case]
    box.edit(change)
    err = refused(command(cmd, box), box, capsys)
    assert f"{box.manifest}: " in err and words in err


@pytest.mark.parametrize("case", ["weights absolute", "weights traversal", "weights symlink out"])
def test_outside_member_message_does_not_tell_whether_the_file_exists(box, case, capsys):
    box.edit(HOSTILE[case][0])
    present = refused(command("predict", box), box, capsys)
    box.outside.unlink()
    absent = refused(command("predict", box), box, capsys)
    assert present == absent and OUTSIDE in present


def test_allow_external_members_loads_an_external_member(box, capsys):
    box.edit(first(weights=lambda box: str(box.outside)))
    refused(command("predict", box), box, capsys)
    assert main(command("predict", box, "--allow-external-members")) == 0
    assert (box.out / "case_1_mask.nii.gz").is_file()
    assert (box.out / "maps" / "case_1_member_focal-0.nii.gz").is_file()
    exported = box.root / "exported"
    argv = ["export", str(box.manifest), "--out", str(exported), "--allow-external-members"]
    assert main(argv) == 0
    assert json.loads((exported / "ensemble.json").read_text())["members"][0]["weights"] == (
        "focal-0.safetensors"
    )


def test_app_and_demo_pass_allow_external_members_on(box):
    """The option reaches the window, and the window's manifest reader and engine process
    honour it (the engine process's answer to the window is an error message)."""
    from strokelens.app.ai_session import _ensemble_info
    from strokelens.app.inference import serve

    for name in ("app", "demo"):
        args = build_parser([name]).parse_args([name, "--allow-external-members"])
        assert window_options(args)["allow_external_members"] is True
    box.edit(first(weights=lambda box: str(box.outside)))
    with pytest.raises(DataError, match=OUTSIDE):
        _ensemble_info(box.manifest, False)
    assert _ensemble_info(box.manifest, True)[0] == 4

    class Pipe(list):
        send = list.append

    sent = Pipe()
    serve(sent, box.manifest, 1, "fp32", None, stop=None, priority=None)
    assert sent[0][:4] == (0, "error", "engine", box.manifest) and OUTSIDE in sent[0][4]


def test_case_folder_name_that_is_no_file_name_is_skipped(box, capsys):
    (box.data / "case_1").rename(box.data / "..case_1")
    err = refused(command("predict", box), box, capsys)
    assert f"{box.data / '..case_1'}: case folder name '..case_1' {NOT_A_NAME}" in err
    assert not list(box.out.glob("**/*.nii*"))


def test_perfusion_refuses_a_case_folder_name_that_is_no_file_name(tmp_path, capsys):
    write_isles_case(tmp_path / "data" / "case 1", shape_xyz=(8, 6, 2), frames=4)
    box = Sandbox(tmp_path, tmp_path / "none", tmp_path / "data", tmp_path / "out", tmp_path)
    argv = ["perfusion", str(box.data), "--out", str(box.out)]
    err = refused(argv, box, capsys)
    assert f"case folder name 'case 1' {NOT_A_NAME}" in err


def test_output_subfolder_symlinked_outside_is_refused(box, capsys):
    elsewhere = box.root / "elsewhere"
    box.out.mkdir(parents=True)
    (box.out / "maps").symlink_to(elsewhere, target_is_directory=True)
    err = refused(command("predict", box), box, capsys)
    assert "leads outside this folder" in err and not list(elsewhere.glob("*.nii*"))


def test_cv_refuses_loss_names_that_are_no_known_loss(box, capsys):
    config = box.root / "hostile.toml"
    config.write_text('[model]\narch = "unet2d"\n[loss]\nnames = ["../../../../escaped"]\n')
    argv = ["cv", "--config", str(config), "--data", str(box.data), "--out", str(box.out)]
    err = refused(argv, box, capsys)
    assert f"{config}: loss.names[0]: Input should be" in err


def test_path_inside_checks_every_part_and_the_resolved_path(tmp_path):
    assert (
        path_inside(tmp_path, "maps", "case_1_prob.nii.gz") == tmp_path / "maps/case_1_prob.nii.gz"
    )
    for parts in (("..",), ("a/b",), ("/etc",), ("x", "..", "y"), ("a..b",), ("nul.txt",)):
        with pytest.raises(DataError) as info:
            path_inside(tmp_path, *parts)
        assert info.value.path == tmp_path
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(DataError, match="leads outside"):
        path_inside(tmp_path, "link", "x")


def _predict(box: Sandbox, *extra: str) -> list[str]:
    return ["predict", str(box.data), "--ensemble", str(box.manifest), *extra]


def _a_file(box: Sandbox) -> Path:
    (box.root / "a_file").write_text("")
    return box.root / "a_file"


def _with_source(box: Sandbox) -> Path:
    write_isles_case(box.root / "isles" / "case_1", (16, 12, 2), frames=12)
    return box.root / "isles"


def _cv_run(box: Sandbox) -> Path:
    (box.root / "run").mkdir(exist_ok=True)
    text = '{"arch": "a", "runs": [{"loss": "ce", "fold": 1, "dsc": 0.5}]}'
    (box.root / "run" / "cv.json").write_text(text)
    return box.root / "run"


#: odd command lines found by probing beyond the issue's list (each was a traceback or a silent
#: wrong result): the sandbox -> (argv, exit status, words of the one-line message)
ODD: dict[str, Callable[[Sandbox], tuple[list[str], int, str]]] = {
    # NaN and negative volumes silently kept every component; inf was a traceback
    **{
        f"--min-component-ml {v}": lambda box, v=v: (
            _predict(box, "--out", str(box.out), "--min-component-ml", v),
            2,
            f"argument --min-component-ml: min_ml must be a finite volume >= 0, got {v}",
        )
        for v in ("nan", "-1.0", "inf")
    },
    # an empty --out (an unset shell variable, say) wrote into the working folder
    "predict --out ''": lambda box: (_predict(box, "--out", ""), 2, "--out: empty; give a folder"),
    "perfusion --out ''": lambda box: (
        ["perfusion", str(box.data), "--out", ""],
        2,
        "--out: empty",
    ),
    "export --out a file": lambda box: (
        ["export", str(box.manifest), "--out", str(_a_file(box))],
        1,
        f"{box.root / 'a_file'}: is a file, not a folder",
    ),
    # the export overwrote the ensemble it was reading
    "export into its source": lambda box: (
        ["export", str(box.manifest), "--out", str(box.manifest.parent)],
        1,
        f"{box.manifest}: is an input of this export (it would be overwritten)",
    ),
    "report --out a file": lambda box: (
        ["report", str(_cv_run(box)), "--out", str(_a_file(box))],
        1,
        f"{box.root / 'a_file'}: is a file, not a folder",
    ),
    "perfusion --out a file": lambda box: (
        ["perfusion", str(_with_source(box)), "--out", str(_a_file(box))],
        1,
        f"{box.root / 'a_file'}: is a file, not a folder",
    ),
}


@pytest.mark.parametrize("case", list(ODD))
def test_odd_command_lines_are_one_line_errors(box, case, capsys):
    argv, code, words = ODD[case](box)
    before = box.snapshot()
    if code == 2:  # refused by the option's type, as argparse refuses
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    else:
        assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and words in err, err
    assert box.snapshot() == before  # nothing written (the sandbox's own files set up first)
