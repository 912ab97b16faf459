"""Units and scale of the maps: ``strokelens.toml`` declarations (``core.units``), their schema,
the sidecar-vs-declaration rule, and the implausible-CBF warning (``core.plausibility``) in the
loader, ``strokelens info`` and the window."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import save, write_isles_case

from strokelens.app.case_loader import read_case
from strokelens.app.cli import main
from strokelens.core.dataset import load_case, open_dataset
from strokelens.core.errors import DataError
from strokelens.core.plausibility import CBF_MEDIAN_RANGE, cbf_units_problem, healthy_cbf_median
from strokelens.core.units import DECLARATION, UNIT_FACTORS, UNITS

SHAPE_XYZ = (24, 20, 4)
#: the phantom's storage: CBF and CBV x 10
CBF_X10 = {"CBF": ("mL/100g/min", 0.1), "CBV": ("mL/100g", 0.1)}


def declaration(folder: Path, maps: dict[str, tuple[str, float]]) -> Path:
    text = "".join(
        f'[maps.{name}]\nunit = "{unit}"\nscale = {scale!r}\n'
        for name, (unit, scale) in maps.items()
    )
    path = folder / DECLARATION
    path.write_text(text)
    return path


def brain_maps(cbf: float = 40.0, lesion_cbf: float = 4.0) -> dict[str, np.ndarray]:
    """(x, y, z) maps: a brain block (CBF ``cbf``, Tmax 2 s) with a hypoperfused lesion (Tmax 9 s,
    CBF ``lesion_cbf``) bigger than the healthy part, and zeros off the brain."""
    brain = np.zeros(SHAPE_XYZ, bool)
    brain[2:22, 2:18] = True
    lesion = brain.copy()
    lesion[2:22, 2:12] = True
    lesion[:, 12:] = False
    maps = {
        "cbf": np.where(lesion, lesion_cbf, np.where(brain, cbf, 0.0)),
        "cbv": np.where(brain, 4.0, 0.0),
        "mtt": np.where(brain, 5.0, 0.0),
        "tmax": np.where(lesion, 9.0, np.where(brain, 2.0, 0.0)),
    }
    return {k: v.astype(np.float32) for k, v in maps.items()}


def write_simple(case_dir: Path, cbf_stored_x: float = 1.0, **kwargs) -> Path:
    """A simple-layout case whose CBF and CBV are stored x ``cbf_stored_x`` (as uint16)."""
    maps = brain_maps(**kwargs)
    save(np.full(SHAPE_XYZ, 30, np.int32), case_dir / "ct.nii.gz")
    for stem, data in maps.items():
        if stem in ("cbf", "cbv"):
            data = np.rint(data * cbf_stored_x).astype(np.uint16)
        save(data, case_dir / f"{stem}.nii.gz")
    return case_dir


def implausible(problems: list[str]) -> list[str]:
    return [p for p in problems if "implausible" in p]


# --- the schema -------------------------------------------------------------------------------

BAD_DECLARATIONS = {
    "CT declared": ('[maps.CT]\nunit = "HU"\n', "maps: unknown map 'CT'"),
    "map typo": ('[maps.cbf]\nunit = "mL/100g/min"\n', "maps: unknown map 'cbf'"),
    "unknown unit": (
        '[maps.CBF]\nunit = "ml/100g/min"\n',
        "maps.CBF.unit: Input should be 'mL/100g/min' or 'mL/g/min'",
    ),
    "unit of another map": ('[maps.Tmax]\nunit = "mL/100g"\n', "maps.Tmax.unit: Input should"),
    "unit missing": ("[maps.CBV]\nscale = 0.1\n", "maps.CBV.unit: required, missing"),
    "nan scale": ('[maps.CBF]\nunit = "mL/100g/min"\nscale = nan\n', "maps.CBF.scale: Input"),
    "inf scale": ('[maps.MTT]\nunit = "s"\nscale = inf\n', "maps.MTT.scale: Input should be a finite"),
    "zero scale": ('[maps.CBF]\nunit = "mL/100g/min"\nscale = 0\n', "maps.CBF.scale: Input should be greater"),
    "negative scale": ('[maps.CBF]\nunit = "mL/100g/min"\nscale = -0.1\n', "maps.CBF.scale: Input"),
    "huge scale": ('[maps.CBF]\nunit = "mL/100g/min"\nscale = 1e300\n', "maps.CBF.scale: Input should be less"),
    "scale as text": ('[maps.CBF]\nunit = "mL/100g/min"\nscale = "0.1"\n', "maps.CBF.scale: Input should be a valid number"),
    "unknown key": ('[maps.CBF]\nunit = "mL/100g/min"\nfactor = 2\n', "maps.CBF.factor: unknown key"),
    "no maps": ('unit = "s"\n', "maps: required, missing"),
    "not TOML": ("[maps.CBF\n", "not a readable units declaration"),
}  # fmt: skip


@pytest.mark.parametrize("text, words", BAD_DECLARATIONS.values(), ids=BAD_DECLARATIONS)
def test_a_bad_declaration_makes_the_case_unloadable_naming_file_and_key(tmp_path, text, words):
    case = write_simple(tmp_path / "case_a")
    (tmp_path / DECLARATION).write_text(text)
    ref = open_dataset(tmp_path)[0]  # the listing still works
    assert len(ref.errors) == 1 and str(tmp_path / DECLARATION) in ref.errors[0]
    assert words in ref.errors[0]
    with pytest.raises(DataError) as info:
        load_case(case)
    assert str(tmp_path / DECLARATION) in str(info.value) and words in str(info.value)


def test_every_declared_map_may_use_its_shown_unit():
    assert set(UNIT_FACTORS) == set(UNITS) - {"CT"}
    assert all(UNIT_FACTORS[c][UNITS[c]] == 1.0 for c in UNIT_FACTORS)


# --- the declaration applied ------------------------------------------------------------------


def test_declaration_applies_in_the_simple_layout_with_unit_factors(tmp_path):
    write_simple(tmp_path / "case_a", cbf_stored_x=10)
    declaration(tmp_path, {"CBF": ("mL/100g/min", 0.1), "CBV": ("mL/g", 0.001), "Tmax": ("ms", 1)})
    case = load_case(tmp_path / "case_a")
    assert case.value_scales == pytest.approx({"CBF": 0.1, "CBV": 0.1, "Tmax": 0.001})
    assert case.problems == []


def test_declaration_at_an_isles_root_applies_whichever_folder_is_opened(tmp_path):
    for k in (1, 2):
        write_isles_case(tmp_path / "TRAINING" / f"case_{k}", SHAPE_XYZ, seed=k)
    declaration(tmp_path, {"CBF": ("mL/100g/min", 0.5)})
    for opened in (tmp_path, tmp_path / "TRAINING", tmp_path / "TRAINING" / "case_2"):
        for ref in open_dataset(opened):
            assert ref.units_file == tmp_path / DECLARATION
            assert load_case(ref.folder).value_scales == {"CBF": 0.5}


def test_the_nearest_declaration_wins_as_a_whole(tmp_path):
    write_simple(tmp_path / "case_a")
    write_simple(tmp_path / "case_b")
    declaration(tmp_path, CBF_X10)
    declaration(tmp_path / "case_b", {"MTT": ("ms", 1)})
    ds = open_dataset(tmp_path)
    assert ds.load("case_a").value_scales == {"CBF": 0.1, "CBV": 0.1}
    assert ds.load("case_b").value_scales == {"MTT": 0.001}  # not merged with the root's


SIDECAR_RULE = {
    # sidecar scale, declared scale -> scale used, a disagreement noted
    "declared only": (None, 0.1, 0.1, False),
    "sidecar only": (0.1, None, 0.1, False),
    "both agree": (0.1, 0.1, 0.1, False),
    "declaration wins": (0.1, 0.01, 0.01, True),
    "declared 1 beats a sidecar": (0.1, 1.0, None, True),
}


@pytest.mark.parametrize("sidecar, declared, used, noted", SIDECAR_RULE.values(), ids=SIDECAR_RULE)
def test_a_declaration_wins_over_a_sidecar_and_a_disagreement_is_noted(
    tmp_path, sidecar, declared, used, noted
):
    paths = write_isles_case(tmp_path / "case_1", SHAPE_XYZ)
    if sidecar is not None:
        paths["CT_CBF"].with_suffix(".json").write_text(json.dumps({"scale": sidecar}))
    if declared is not None:
        declaration(tmp_path, {"CBF": ("mL/100g/min", declared)})
    case = load_case(tmp_path / "case_1")
    assert case.value_scales.get("CBF") == used
    notes = [p for p in case.problems if "its sidecar gives" in p]
    assert bool(notes) == noted
    if noted:
        assert notes == [
            f"CBF: scale {declared:g} from {tmp_path / DECLARATION} used; its sidecar gives "
            f"{sidecar:g}"
        ]


# --- the plausibility rule --------------------------------------------------------------------


def _zyx(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = {"cbf": "CBF", "cbv": "CBV", "mtt": "MTT", "tmax": "Tmax"}
    return {names[k]: v.T.copy() for k, v in maps.items()}


def test_the_median_leaves_out_hypoperfused_and_off_brain_voxels():
    maps = _zyx(brain_maps(cbf=40.0, lesion_cbf=4.0))  # the lesion is most of the brain
    assert healthy_cbf_median(maps, {}) == 40.0
    assert healthy_cbf_median(maps, {"CBF": 0.5}) == 20.0
    # Tmax stored in ms: 2000 and 9000 are both "> 6 s" unless scaled to seconds
    in_ms = maps | {"Tmax": maps["Tmax"] * 1000}
    assert healthy_cbf_median(in_ms, {"Tmax": 1e-3}) == 40.0
    assert healthy_cbf_median(in_ms, {}) is None
    assert healthy_cbf_median({k: np.zeros_like(v) for k, v in maps.items()}, {}) is None


PLAUSIBILITY = {
    # healthy CBF as read -> warned
    "normal": (40.0, False),
    "low end": (CBF_MEDIAN_RANGE[0], False),
    "high end": (CBF_MEDIAN_RANGE[1], False),
    "stored x 10": (400.0, True),
    "mL/g/min": (0.4, True),
    "just below": (9.9, True),
    "just above": (150.5, True),
}


@pytest.mark.parametrize("cbf, warned", PLAUSIBILITY.values(), ids=PLAUSIBILITY)
def test_implausible_cbf_is_warned(cbf, warned):
    problem = cbf_units_problem(_zyx(brain_maps(cbf=cbf)), {})
    assert (problem is not None) == warned
    if warned:
        assert f"healthy-side median {cbf:.4g}" in problem and DECLARATION in problem


def test_the_loader_warns_without_a_declaration_and_never_rescales(tmp_path):
    write_simple(tmp_path / "case_a", cbf_stored_x=10)
    case = load_case(tmp_path / "case_a")
    (problem,) = implausible(case.problems)
    assert "median 400" in problem
    assert case.value_scales == {} and case.channels["CBF"].max() == 400.0
    declaration(tmp_path / "case_a", {"CBF": ("mL/100g/min", 1)})  # declared as is: believed
    case = load_case(tmp_path / "case_a")
    assert case.problems == [] and case.value_scales == {}


def test_info_lists_the_warning_and_exits_0(tmp_path, capsys):
    write_simple(tmp_path / "case_a", cbf_stored_x=10)
    write_simple(tmp_path / "case_b")
    assert main(["info", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["errors"] == []
    (warning,) = summary["warnings"]
    assert warning.startswith("case_a: CBF values look implausible for mL/100g/min")
    assert main(["info", str(tmp_path)]) == 0
    assert "case_a: CBF values look implausible" in capsys.readouterr().out
    declaration(tmp_path, CBF_X10)
    assert main(["info", str(tmp_path), "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert warnings == []  # declared: case_b's CBF 4 is the user's word (scale 0.1)


def test_info_reports_a_bad_declaration_and_a_sidecar_disagreement(tmp_path, capsys):
    paths = write_isles_case(tmp_path / "case_1", SHAPE_XYZ)
    paths["CT_CBV"].with_suffix(".json").write_text('{"scale": 0.1}')
    declaration(tmp_path, {"CBF": ("mL/100g/min", 1), "CBV": ("mL/100g", 0.5)})
    assert main(["info", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == [
        f"case_1: CBV: scale 0.5 from {tmp_path / DECLARATION} used; its sidecar gives 0.1"
    ]
    (tmp_path / DECLARATION).write_text('[maps.CBF]\nunit = "mL/100g/min"\nscale = 0\n')
    assert main(["info", str(tmp_path), "--json"]) == 1
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert DECLARATION in error and "maps.CBF.scale" in error


# --- the workstation --------------------------------------------------------------------------


def test_the_opened_case_holds_the_warning_and_shows_it(loop, window, tmp_path):
    write_simple(tmp_path / "case_a", cbf_stored_x=10)
    prepared = read_case(open_dataset(tmp_path)[0])  # the window's worker
    assert implausible(prepared.case.problems)
    assert loop.run_until_complete(window.cases.open_dataset(tmp_path))
    assert "CBF values look implausible" in window.statusBar().currentMessage()


# --- the phantom in the simple layout (the example) -------------------------------------


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    """One phantom case (ISLES layout, CBF and CBV stored x 10 with sidecar scale 0.1)."""
    from strokelens.core.phantom import generate_dataset

    root = tmp_path_factory.mktemp("phantom")
    generate_dataset(root, 1, seed=3, split="training", slices=(2,))
    return root


def simple_copy(phantom: Path, out: Path) -> Path:
    """The phantom case's maps as a simple-layout case (no sidecars: names do not match)."""
    ref = open_dataset(phantom)[0]
    case_dir = out / "case_1"
    case_dir.mkdir(parents=True)
    for key, stem in [
        ("CT", "ct"),
        ("CBF", "cbf"),
        ("CBV", "cbv"),
        ("MTT", "mtt"),
        ("Tmax", "tmax"),
    ]:
        shutil.copy(ref.files[key], case_dir / f"{stem}.nii")
    return case_dir


@pytest.mark.heavy
def test_phantom_copied_to_the_simple_layout_is_warned_until_declared(phantom, tmp_path, capsys):
    isles = load_case(open_dataset(phantom)[0].folder)
    assert isles.value_scales == {"CBF": 0.1, "CBV": 0.1} and not implausible(isles.problems)
    median = healthy_cbf_median(isles.channels, isles.value_scales)
    assert CBF_MEDIAN_RANGE[0] < median < CBF_MEDIAN_RANGE[1]

    case_dir = simple_copy(phantom, tmp_path)
    assert nib.load(case_dir / "cbf.nii").get_data_dtype() == np.uint16
    simple = load_case(case_dir)
    assert simple.value_scales == {}
    (problem,) = implausible(simple.problems)
    assert f"median {median * 10:.4g}" in problem
    assert main(["info", str(tmp_path)]) == 0
    assert "CBF values look implausible" in capsys.readouterr().out

    declaration(tmp_path, CBF_X10)
    fixed = load_case(case_dir)
    assert fixed.value_scales == isles.value_scales and fixed.problems == []
    assert np.array_equal(fixed.channels["CBF"], isles.channels["CBF"])
    assert main(["info", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
