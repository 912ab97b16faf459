"""The installer: what ships is portable (no builder paths, valid hashes), the frozen binary
answers as ``python -m strokelens.training``, and (STROKELENS_PACKAGING=1, many minutes) the
built bundle and the unpacked .deb pass ``strokelens --self-test``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from strokelens.app.cli import main
from strokelens.core.demo import DEMO_MANIFEST
from strokelens.core.manifest import Manifest, Member, read_manifest
from strokelens.core.prediction_store import manifest_fingerprint
from strokelens.core.weights import file_sha256, read_metadata, save_weights
from strokelens.training.export import export_ensemble

REPO = Path(__file__).resolve().parent.parent

#: the demo manifest's meta as it was exported (the paths of the machine it was made on)
BUILDER_META = {
    "config": "/work/main/resources/configs/cpu.toml",
    "data": "/work/demo/data",
    "exported_from": "/work/demo/runs/demo-cpu/ensemble.json",
    "fp16": True,
}


def _absolute_paths(meta: dict) -> list[str]:
    return [v for v in meta.values() if isinstance(v, str) and Path(v).is_absolute()]


def test_bundled_manifest_is_portable_and_its_weights_and_cache_key_unchanged():
    manifest = read_manifest(DEMO_MANIFEST)
    assert manifest.meta["config"] == "resources/configs/cpu.toml"
    assert not _absolute_paths(manifest.meta)
    for member in manifest.members:  # only meta changed: every weight file still matches
        assert file_sha256(manifest.weights_path(member)) == member.sha256
    as_built = Manifest(manifest.name, manifest.members, manifest.preprocessing, meta=BUILDER_META)
    assert manifest_fingerprint(manifest) == manifest_fingerprint(as_built)  # caches stay valid


def test_export_writes_no_absolute_path(tmp_path, monkeypatch):
    """What cross-validation records (``training.cv``: resolved paths) is exported relative to
    the folder the export runs in when inside it, else by its name alone."""
    from helpers import TINY

    from strokelens.core.models import build_model
    from strokelens.core.preprocessing import load_scaling

    run = tmp_path / "runs" / "r1"
    cv_meta = {"config": "/elsewhere/configs/cpu.toml", "data": str(tmp_path / "data")}
    members = []
    for loss in ("focal", "ce"):
        sha = save_weights(build_model(TINY), run / f"{loss}.safetensors", TINY, cv_meta)
        members.append(Member(f"{loss}-fold1", loss, 1, f"{loss}.safetensors", sha))
    Manifest("t", members, load_scaling(), meta=cv_meta).save(run / "ensemble.json")
    monkeypatch.chdir(tmp_path)

    exported = read_manifest(export_ensemble(run / "ensemble.json", tmp_path / "out"))
    assert exported.meta["config"] == "cpu.toml"
    assert exported.meta["data"] == "data"
    assert exported.meta["exported_from"] == "runs/r1/ensemble.json"
    for member in exported.members:  # the weight files' own meta too
        _, meta = read_metadata(exported.weights_path(member))
        assert not _absolute_paths(meta) and meta["data"] == "data"


def test_training_worker_entry_point_answers_through_the_app_command(capsys):
    """``strokelens -m strokelens.training ...``: what the frozen binary runs for the retrain
    worker (``sys.executable -m strokelens.training``), from source as well."""
    with pytest.raises(SystemExit) as exit_info:
        main(["-m", "strokelens.training", "cv", "--help"])
    assert exit_info.value.code == 0
    assert "--config" in capsys.readouterr().out


# -- the real build (STROKELENS_PACKAGING=1) --------------------------------------------------------
packaging = pytest.mark.skipif(
    os.environ.get("STROKELENS_PACKAGING") != "1",
    reason="builds the installer (many minutes): set STROKELENS_PACKAGING=1",
)


def _self_test(launcher: Path, demo: Path) -> str:
    env = {**os.environ, "XDG_DATA_HOME": str(demo.parent / "xdg-data")}
    done = subprocess.run(
        [str(launcher), "--self-test", "--demo-dir", str(demo)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@packaging
def test_built_bundle_and_unpacked_deb_pass_the_self_test(tmp_path):
    subprocess.run(["bash", str(REPO / "packaging" / "build.sh")], check=True, timeout=5400)
    bundle = REPO / "dist" / "strokelens" / "strokelens"
    (deb,) = (REPO / "dist").glob("strokelens_*_amd64.deb")
    demo = tmp_path / "demo"

    out = _self_test(bundle, demo)
    assert "frozen" in out and "FAIL" not in out and "self-test passed" in out

    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    control = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True
    ).stdout
    assert "libxcb-cursor0" in control  # the library Qt's xcb plugin failed without
    launcher = root / "usr" / "bin" / "strokelens"
    assert launcher.is_symlink() and launcher.resolve() == root / "opt/strokelens/strokelens"
    assert (root / "usr/share/applications/strokelens.desktop").is_file()
    assert (root / "usr/share/icons/hicolor/256x256/apps/strokelens.png").stat().st_size > 1000
    out = _self_test(launcher, demo)  # the installed copy, on the demo the bundle generated
    assert str(root / "opt" / "strokelens") in out and "self-test passed" in out
