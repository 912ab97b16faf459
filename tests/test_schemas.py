"""Every external file kind is validated by its schema (core.schema): each broken file gives one
line naming the file, the field and the problem, never a traceback; deep nesting is refused
before parsing; good files still load."""

from __future__ import annotations

import json
import re

import pytest
from helpers import write_isles_case

from strokelens.app.cli import main
from strokelens.core.errors import DataError
from strokelens.core.isles import read_sidecar
from strokelens.core.limits import MAX_NESTING, cpu_count
from strokelens.core.preprocessing import load_scaling
from strokelens.core.schema import check_nesting
from strokelens.resources import resource_path
from strokelens.training.config import load_config
from strokelens.training.cv import Folds
from strokelens.training.trainer import FitResult

DEEP = 100_000

GOOD_CONFIG = '[model]\narch = "unet2d"\nbase_channels = 4\ndepth = 2\n[train]\nthreads = 1\n'

#: (extra TOML appended to / replacing the good config, words of the message)
BAD_CONFIGS = {
    "string count": (
        "[train]\nbatch_size = '8'\n",
        "train.batch_size: Input should be a valid integer, not a string",
    ),
    "zero count": (
        "[train]\nmax_epochs = 0\n",
        "train.max_epochs: Input should be greater than or equal to 1",
    ),
    "negative count": (
        "[train]\nearly_stop = -3\n",
        "train.early_stop: Input should be greater than or equal to 1",
    ),
    "bool count": (
        "[train]\nbatch_size = true\n",
        "train.batch_size: Input should be a valid integer, not true/false",
    ),
    "nan rate": ("[train]\nlr = nan\n", "train.lr: Input should be a finite number"),
    "inf rate": ("[train]\nlr = inf\n", "train.lr: Input should be a finite number"),
    "typo key": ("[train]\nbatch_sise = 8\n", "train.batch_sise: unknown key"),
    "typo section": ("[trian]\nbatch_size = 8\n", "trian: unknown key"),
    "threads beyond CPUs": (f"[train]\nthreads = {cpu_count() + 1}\n", f"at most {cpu_count()}"),
    "scale reversed": (
        "[augment]\nscale = [1.1, 0.9]\n",
        "augment.scale: low (1.1) must not exceed high (0.9)",
    ),
    "scale with nan": (
        "[augment]\nscale = [0.9, nan]\n",
        "augment.scale[1]: Input should be a finite number",
    ),
    "scale missing end": (
        "[augment]\nscale = [0.9]\n",
        "augment.scale[1]: required, missing",
    ),
    "unknown loss": (
        "[loss]\nnames = ['dice']\n",
        "loss.names[0]: Input should be 'focal', 'ce' or 'wce'",
    ),
    "no losses": ("[loss]\nnames = []\n", "loss.names: List should have at least 1 item"),
    "loss params not trained": (
        "[loss]\nnames = ['ce']\n[loss.focal]\ngamma = 2.0\n",
        "[loss.focal] given but 'focal' is not in names",
    ),
    "negative gamma": (
        "[loss.focal]\ngamma = -1.0\n",
        "loss.focal.gamma: Input should be greater than or equal to 0",
    ),
    "one fold": ("[cv]\nfolds = 1\n", "cv.folds: Input should be greater than or equal to 2"),
    "model key": (
        "[model]\narch = 'unet2d'\ndepht = 2\n",
        "model: unknown keys for unet2d: ['depht']",
    ),
    "deep arrays": (
        "[cv]\nx = " + "[" * DEEP + "\n",
        f"nested more than {MAX_NESTING} levels deep",
    ),
    "deep dotted keys": (
        "[cv]\n" + "a." * DEEP + "a = 1\n",
        f"nested more than {MAX_NESTING} levels deep",
    ),
    "not TOML": ("[train\n", "not a readable training config"),
}


def _merge(extra: str) -> str:
    """The good config with ``extra``'s tables replacing the same tables."""
    if extra.startswith("[model]"):
        return extra
    return GOOD_CONFIG.replace("[train]\nthreads = 1\n", "") + extra


def test_good_configs_load():
    for name in ("paper", "cpu", "unet2d_cpu", "unet3d_cpu"):
        assert load_config(name).folds == 5
    assert load_config(resource_path("configs", "cpu.toml")).schedule.threads == 2


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_line_through_the_cli(tmp_path, case, capsys):
    extra, words = BAD_CONFIGS[case]
    config = tmp_path / "bad.toml"
    config.write_text(_merge(extra))
    argv = ["cv", "--config", str(config), "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert f"{config}: " in err and words in err


def _manifest(tmp_path) -> dict:
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(b"x")
    member = {"name": "m", "loss": "ce", "fold": 1, "weights": weights.name, "sha256": "a" * 64}
    ranges = {c: [0, 100] for c in ("CT", "CBF", "CBV", "MTT", "Tmax")}
    return {
        "format": "strokelens-ensemble",
        "version": 1,
        "name": "x",
        "preprocessing": ranges,
        "members": [member],
    }


BAD_MANIFESTS = {
    "equal range": (
        lambda d: d["preprocessing"].update(CT=[5, 5]),
        "preprocessing.CT: low (5.0) must be below high (5.0)",
    ),
    "missing range": (
        lambda d: d["preprocessing"].pop("MTT"),
        "preprocessing: missing channels ['MTT']",
    ),
    "NaN literal": (
        lambda d: d["preprocessing"].update(CT=[0, float("nan")]),
        "NaN is not a JSON number",
    ),
    "range of strings": (
        lambda d: d["preprocessing"].update(CT=["0", "1"]),
        "preprocessing.CT[0]: Input should be a valid number, not a string",
    ),
    "unknown channel": (
        lambda d: d["preprocessing"].update(ADC=[0, 1]),
        "preprocessing.ADC: Input should be",
    ),
    "version string": (
        lambda d: d.update(version="1"),
        "version: Input should be a valid integer, not a string",
    ),
    "unknown top key": (lambda d: d.update(extra=1), "extra: unknown key"),
    "deep meta": (lambda d: d.update(meta="DEEP"), f"nested more than {MAX_NESTING} levels deep"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_bad_manifest_is_one_line_through_predict(tmp_path, case, capsys):
    edit, words = BAD_MANIFESTS[case]
    data = _manifest(tmp_path)
    edit(data)
    path = tmp_path / "ensemble.json"
    path.write_text(json.dumps(data).replace('"DEEP"', "[" * DEEP + "]" * DEEP))
    write_isles_case(tmp_path / "data" / "case_1", (8, 8, 2))
    argv = [
        "predict",
        str(tmp_path / "data"),
        "--ensemble",
        str(path),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert f"{path}: " in err and words in err


def test_deep_nesting_is_refused_before_parsing_for_every_kind(tmp_path):
    """10^5 levels overflow a recursive parser; each kind refuses them with the file named."""
    deep_json = "[" * DEEP + "]" * DEEP
    sidecar = tmp_path / "s.json"
    sidecar.write_text('{"scale": ' + deep_json + "}")
    with pytest.raises(ValueError, match=f"nested more than {MAX_NESTING}"):
        read_sidecar(sidecar)
    from strokelens.core.schema import load

    for schema in (Folds, FitResult):
        path = tmp_path / "f.json"
        path.write_text('{"a": ' + deep_json + "}")
        with pytest.raises(DataError, match=f"nested more than {MAX_NESTING}") as info:
            load(path, schema, "file")
        assert info.value.path == path
    toml = tmp_path / "p.toml"
    toml.write_text("x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n")
    with pytest.raises(DataError, match=f"nested more than {MAX_NESTING}"):
        load_scaling(toml)


def test_nesting_scan_ignores_brackets_in_strings_and_comments():
    check_nesting('{"a": "' + "[" * 100 + '"}')
    check_nesting("a = '" + "{" * 100 + "' # " + "[" * 100 + '\nb = """' + "[" * 100 + '"""')
    check_nesting('{"a": [1.5, 2.25], "b": {"c": [[1]]}}')
    with pytest.raises(ValueError):
        check_nesting("[" * (MAX_NESTING + 1))


def test_preprocessing_config_errors_name_the_channel(tmp_path):
    good = resource_path("configs", "preprocessing.toml").read_text()
    for change, words in [
        (("high = 100.0", "high = 0.0"), "channels.CT: low (0.0) must be below high (0.0)"),
        (("high = 20.0\n\n[channels.Tmax]", "high = nan\n\n[channels.Tmax]"), "channels.MTT[1]"),
        (("[channels.CBF]\nlow = 0.0\nhigh = 1000.0\n", ""), "channels: missing channels ['CBF']"),
        (
            ("low = 0.0\nhigh = 100.0", "low = 0.0\nhihg = 100.0"),
            "channels.CT: unknown keys ['hihg']",
        ),
    ]:
        bad = tmp_path / "p.toml"
        bad.write_text(good.replace(*change, 1))
        with pytest.raises(DataError, match=re.escape(words)) as info:
            load_scaling(bad)
        assert info.value.path == bad


def test_sidecar_keeps_unknown_keys_and_checks_the_used_ones(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"scale": 10, "Manufacturer": {"any": [1]}, "description": "a - b - c_P1"}')
    assert read_sidecar(path).scale == 10.0
    for text, words in [
        ('{"scale": -1}', "scale: Input should be greater than or equal to 0.000001"),
        ('{"scale": 1e9}', "scale: Input should be less than or equal to 1000000"),
        ('{"description": 5}', "description"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=words):
            read_sidecar(path)


# --- resume from bad checkpoint files, end to end through `strokelens cv` ---------------------


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    """A data set, a tiny config and a run folder with one finished fold (trained once)."""
    root = tmp_path_factory.mktemp("cv")
    for k in range(1, 5):
        write_isles_case(
            root / "data" / "TRAINING" / f"case_{k}", (16, 16, 2), patient=f"P{k}", seed=k
        )
    config = root / "tiny.toml"
    config.write_text(
        GOOD_CONFIG
        + "batch_size = 2\nmax_epochs = 1\nstage1_epochs = 0\nlr = 1e-3\namp = false\n"
        + "[loss]\nnames = ['ce']\n[augment]\nenabled = false\n[cv]\nfolds = 2\n"
    )
    argv = ["cv", "--config", str(config), "--data", str(root / "data"), "--out", str(root / "run")]
    assert main([*argv, "--fold", "1"]) == 0
    return root, argv


RESUME_DAMAGE = {
    "folds.json truncated": ("folds.json", lambda t: t[: len(t) // 2], "not a readable fold split"),
    "folds.json wrong type": ("folds.json", lambda t: '{"a": 1}', "Input should be a valid list"),
    "folds.json other cases": ("folds.json", lambda t: '[["x"], ["y"]]', "folds do not match"),
    "result.json missing key": (
        "ce/fold_1/result.json",
        lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "epochs"}),
        "epochs: required, missing",
    ),
    "result.json wrong type": (
        "ce/fold_1/result.json",
        lambda t: json.dumps(json.loads(t) | {"best_epoch": "1"}),
        "best_epoch: Input should be a valid integer, not a string",
    ),
    "result.json truncated": (
        "ce/fold_1/result.json",
        lambda t: t[:10],
        "not a readable training result",
    ),
    "checkpoint truncated": ("ce/fold_1/checkpoint.pt", None, "not a readable checkpoint"),
}


@pytest.mark.parametrize("case", list(RESUME_DAMAGE))
def test_resume_from_a_bad_checkpoint_names_the_file(cv_run, case, capsys):
    root, argv = cv_run
    name, damage, words = RESUME_DAMAGE[case]
    path = root / "run" / name
    original = path.read_bytes()
    result = root / "run" / "ce/fold_1/result.json"
    kept = result.read_bytes()
    try:
        if damage is None:  # a killed run: no result.json, a torn checkpoint
            result.unlink()
            path.write_bytes(original[: len(original) // 3])
        else:
            path.write_text(damage(original.decode()))
        assert main([*argv, "--fold", "1", "--resume"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1
        assert f"{path}: " in err and words in err
    finally:
        path.write_bytes(original)
        result.write_bytes(kept)


def _cv_summary() -> dict:
    runs = [{"loss": loss, "fold": f, "dsc": 0.5} for loss in ("focal", "ce") for f in (1, 2)]
    return {"arch": "unet2d", "runs": runs, "mean_dsc": {"focal": 0.5, "ce": 0.5}}


#: (edit of a good cv.json, words of the one-line message)
BAD_CV_SUMMARIES = {
    "run without dsc": (lambda d: d["runs"][0].pop("dsc"), "runs[0].dsc: required, missing"),
    "fold as a string": (
        lambda d: d["runs"][1].update(fold="2"),
        "runs[1].fold: Input should be a valid integer, not a string",
    ),
    "fold 0": (lambda d: d["runs"][0].update(fold=0), "runs[0].fold: Input should be greater"),
    "unknown loss": (lambda d: d["runs"][0].update(loss="dice"), "runs[0].loss: Input should be"),
    "dsc above 1": (lambda d: d["runs"][0].update(dsc=7), "runs[0].dsc: Input should be less"),
    "NaN dsc": (lambda d: d["runs"][0].update(dsc=float("nan")), "NaN is not a JSON number"),
    "run not an object": (
        lambda d: d["runs"].append(3),
        "runs[4]: Input should be a valid dictionary",
    ),
    "no runs": (lambda d: d.update(runs=[]), "runs: List should have at least 1 item"),
    "a fold twice": (
        lambda d: d["runs"].append({"loss": "ce", "fold": 2, "dsc": 0.1}),
        "runs: ce fold 2 is listed twice",
    ),
    "no arch": (lambda d: d.pop("arch"), "arch: required, missing"),
    "a list": (lambda d: (d.clear(), d.update(L=1)), "L: unknown key"),
    "deep config": (lambda d: d.update(config="DEEP"), f"nested more than {MAX_NESTING}"),
}


@pytest.mark.parametrize("case", list(BAD_CV_SUMMARIES))
def test_bad_cv_summary_is_one_line_through_report(tmp_path, case, capsys):
    edit, words = BAD_CV_SUMMARIES[case]
    data = _cv_summary()
    edit(data)
    path = tmp_path / "run" / "cv.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data).replace('"DEEP"', "[" * DEEP + "]" * DEEP))
    assert main(["report", str(path.parent), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert f"{path}: " in err and words in err, err


def test_good_cv_summary_gives_a_report(tmp_path, capsys):
    path = tmp_path / "run" / "cv.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_cv_summary()))
    assert main(["report", str(path.parent)]) == 0
    assert "| Total | 0.50 ± 0.00 | 0.50 ± 0.00 |" in capsys.readouterr().out
