"""Retrain with corrections, end to end on tiny cases: approved corrections -> a new registry
version with before/after metrics -> promote -> Run AI's default uses it -> rollback; the worker
killed (SIGKILL) or cancelled (SIGTERM) leaves the active version alone and resumes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import save, write_isles_case

from strokelens.app.ai_session import default_ensemble
from strokelens.app.cli import main
from strokelens.core.dataset import open_dataset
from strokelens.core.engine import Engine
from strokelens.core.manifest import read_manifest
from strokelens.core.prediction_store import PredictionCache, manifest_fingerprint
from strokelens.core.preprocessing import reference_medians
from strokelens.core.project.store import ProjectStore
from strokelens.core.registry import BASE, Registry, promotion_check
from strokelens.core.weights import load_weights
from strokelens.training.finetune_cli import add_arguments, command_line
from strokelens.training.retrain import RetrainError, finetune

APPROVED = [f"training/case_{k}" for k in range(1, 6)]


def _correction(case) -> np.ndarray:
    mask = np.zeros(case.shape, np.uint8)
    mask[:, 3:12, 4:14] = 1
    return mask


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Six tiny cases of three patients (two each); cases 1-5 corrected (imported NIfTI masks)
    and approved, case 6 keeps its original ground truth."""
    root = tmp_path_factory.mktemp("retrain")
    data = root / "data"
    for k in range(1, 7):
        write_isles_case(data / "TRAINING" / f"case_{k}", patient=f"P{(k + 1) // 2}", seed=k)
    dataset = open_dataset(data)
    with ProjectStore.open(root / "project", data, create=True) as store:
        for key in APPROVED:
            case = dataset.load(key)
            path = save(np.transpose(_correction(case), (2, 1, 0)), root / "m.nii.gz", case.affine)
            store.import_mask(case, path, "dr test")
            store.approve(key, "dr test")
    return root / "project"


def _worker(project, registry, *args):
    command = [sys.executable, "-m", "strokelens.training", "finetune", "--project", str(project)]
    command += ["--registry", str(registry.root), "--json", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _read_until(proc, kind: str) -> list[dict]:
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] in (kind, "error", "done"):
            return events
    raise AssertionError(f"worker ended before a {kind} event: {proc.stderr.read()}")


@pytest.mark.heavy
def test_retrain_promote_rollback(project, ensemble, tmp_path, one_torch_thread):
    reg = Registry(tmp_path / "models", base=ensemble)
    events = []
    result = finetune(project, registry=reg, epochs=2, members=["ce-2"], on_event=events.append)
    kinds = [e["event"] for e in events]
    assert kinds == ["start"] + ["baseline"] * 5 + ["epoch"] * 2 + ["member_done", "done"]
    start = events[0]
    assert start["version"] == result.version == "v0002" and start["parent"] == BASE
    # One of the three patients is held out whole (its approved cases); the rest is trained on.
    patient = {ref.key: ref.patient for ref in open_dataset(project.parent / "data")}
    held = {patient[k] for k in start["heldout_cases"]}
    assert len(held) == 1
    assert start["heldout_cases"] == [k for k in APPROVED if patient[k] in held]
    assert start["train_cases"] == [k for k in APPROVED if patient[k] not in held]
    assert [e["member"] for e in events[1:6]] == ["focal-0", "focal-1", "ce-2", "ce-3", "ensemble"]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    done = events[-1]
    assert done["recommend"] is promotion_check(done["before"], done["after"], start["members"])[0]
    # Untrained members keep their scores; the record keeps what the events said.
    assert done["after"]["focal-1"] == done["before"]["focal-1"]
    record = reg.record("v0002")
    assert record.before == done["before"] and record.after == done["after"]
    assert {c.key for c in record.train_cases}.isdisjoint(record.heldout_cases)
    with ProjectStore.open(project, writable=False) as store:
        assert all(c.mask_sha256 == store.record(c.key).mask_sha256 for c in record.train_cases)
    manifest = read_manifest(reg.manifest_path("v0002"))
    base = read_manifest(ensemble)
    changed = {
        m.name for m, b in zip(manifest.members, base.members, strict=True) if m.sha256 != b.sha256
    }
    assert changed == {"ce-2"}
    trained = next(m for m in manifest.members if m.name == "ce-2")
    _, _, meta = load_weights(manifest.weights_path(trained), sha256=trained.sha256)
    assert meta["finetuned_from"] == BASE
    assert reg.active() == BASE  # a retrain never promotes

    # The prediction cache is keyed by the ensemble, so each version keeps its own entries.
    case = open_dataset(project.parent / "data").load("training/case_6")
    cache = PredictionCache(tmp_path / "cache")
    old = manifest_fingerprint(base)
    cache.put(old, case, Engine(base, device="cpu").predict(case))
    reg.promote("v0002")
    used = default_ensemble(None, None, reg)
    assert used == reg.manifest_path("v0002")
    new = manifest_fingerprint(read_manifest(used))
    assert new != old and cache.get(new, case) is None
    prediction = Engine(read_manifest(used), device="cpu").predict(case)
    assert prediction.member_names == [m.name for m in manifest.members]
    reg.rollback(BASE)
    assert default_ensemble(None, None, reg) == ensemble
    assert cache.get(old, case) is not None


def test_original_cases_come_from_the_data_the_parent_was_trained_on(
    project, ensemble, tmp_path, one_torch_thread
):
    """``originals_from``: the mixed-in cases are another data set's (whose keys clash with the
    project's), prefixed ``original:``; their labels are that data set's ground truth."""
    originals = tmp_path / "original-data"
    for k in range(1, 4):
        write_isles_case(originals / "TRAINING" / f"case_{k}", patient=f"O{k}", seed=40 + k)
    reg = Registry(tmp_path / "models", base=ensemble)
    events = []
    finetune(
        project, registry=reg, epochs=1, members=["ce-2"], ratio=1.5,
        originals_from=originals, on_event=events.append,
    )  # fmt: skip
    start = events[0]
    corrections = start["corrections"]
    assert len(start["original_cases"]) == round(len(corrections) / 1.5)
    inner = {"training/case_1", "training/case_2", "training/case_3"}
    for key in start["original_cases"]:
        assert key.startswith("original:") and key.removeprefix("original:") in inner
    record = reg.record("v0002")
    sources = {c.key: c.source for c in record.train_cases}
    assert {k for k, v in sources.items() if v == "original"} == set(start["original_cases"])
    assert set(corrections) <= set(sources)  # the project's own training/case_1 stays its own
    with pytest.raises(RetrainError, match="needs a ratio"):
        finetune(project, registry=reg, originals_from=originals)


def test_a_relative_version_takes_the_reference_sites_medians_and_is_judged_fairly(
    project, ensemble, tmp_path, one_torch_thread
):
    """``relative``: the new version's CBF/CBV references are the originals' brain medians; the
    parent is measured on its own (absolute) inputs; a relative parent passes its references on."""
    originals = tmp_path / "reference-site"
    for k in range(1, 4):
        write_isles_case(originals / "TRAINING" / f"case_{k}", patient=f"O{k}", seed=40 + k)
    settings = dict(epochs=1, members=["ce-2"], ratio=1.0, heldout=["training/case_6"])
    with pytest.raises(RetrainError, match="relative maps need the reference site's data"):
        finetune(project, registry=Registry(tmp_path / "r0", base=ensemble), relative=True,
                 **settings)  # fmt: skip
    absolute = finetune(project, registry=Registry(tmp_path / "r1", base=ensemble),
                        originals_from=originals, **settings)  # fmt: skip
    reg = Registry(tmp_path / "r2", base=ensemble)
    relative = finetune(project, registry=reg, originals_from=originals, relative=True, **settings)
    expected = reference_medians(open_dataset(originals))
    scaling = reg.manifest(relative.version).preprocessing
    assert {c: scaling[c].reference for c in expected} == expected
    assert all(r.reference is None for c, r in scaling.items() if c not in expected)
    assert reg.record(relative.version).config["relative"] == expected
    assert relative.before == absolute.before  # the parent, on the inputs it was trained on
    # a relative parent keeps its references: no reference data needed again
    reg.promote(relative.version)
    again = finetune(project, registry=reg, relative=True, epochs=1, members=["ce-3"],
                     heldout=["training/case_6"])  # fmt: skip
    assert reg.manifest(again.version).preprocessing == scaling


def test_a_cache_union_keeps_clashing_keys_apart(tmp_path):
    from strokelens.training.cache import CacheReader, CacheUnion, build_cache

    readers = {}
    for prefix, seed in (("", 1), ("original:", 2)):
        root = tmp_path / f"data{seed}"
        write_isles_case(root / "TRAINING" / "case_1", patient="P", seed=seed)
        readers[prefix] = CacheReader(build_cache(open_dataset(root), tmp_path / f"c{seed}.h5"))
    union = CacheUnion(readers)
    assert [c.key for c in union.cases] == ["training/case_1", "original:training/case_1"]
    for prefix, reader in readers.items():
        key = prefix + "training/case_1"
        assert union.case(key).key == key
        np.testing.assert_array_equal(union.image(key, 0), reader.image("training/case_1", 0))
        np.testing.assert_array_equal(union.label(key), reader.label("training/case_1"))
    first, second = union.image("training/case_1"), union.image("original:training/case_1")
    assert not np.array_equal(first, second)
    with pytest.raises(KeyError):
        union.image("original:training/case_9")
    union.close()


def test_bad_requests_are_refused_clearly(project, ensemble, tmp_path):
    reg = Registry(tmp_path / "models", base=ensemble)
    with pytest.raises(RetrainError, match="members"):
        finetune(project, registry=reg, members=["nope"])
    with pytest.raises(RetrainError, match="epochs or minutes"):
        finetune(project, registry=reg, epochs=1, minutes=1)
    with pytest.raises(RetrainError, match="neither approved"):
        finetune(project, registry=reg, heldout=["training/case_99"])
    with pytest.raises(RetrainError, match="every approved correction is held out"):
        finetune(
            project, registry=reg, heldout=["training/case_1", "training/case_3", "training/case_5"]
        )
    with pytest.raises(RetrainError, match="no unfinished retrain v0002"):
        finetune(project, registry=reg, resume="v0002")
    assert reg.staged() == [] and reg.versions() == []


@pytest.mark.heavy
def test_killed_worker_leaves_active_alone_and_resumes(project, ensemble, tmp_path):
    reg = Registry(tmp_path / "models", base=ensemble)
    # A tiny version made active first, so that the worker (whose base is the bundled demo)
    # fine-tunes the tiny members.
    finetune(project, registry=reg, epochs=1, members=["ce-3"], heldout=["training/case_6"])
    reg.promote("v0002")
    args = ["--epochs", "3", "--members", "focal-0", "--heldout", "training/case_6"]
    proc = _worker(project, reg, *args)
    events = _read_until(proc, "epoch")
    proc.kill()
    proc.wait()
    assert events[0]["event"] == "start" and events[0]["version"] == "v0003"
    assert events[-1]["event"] == "epoch" and events[-1]["epoch"] == 1
    assert reg.active() == "v0002" and reg.versions() == ["v0002"] and reg.staged() == ["v0003"]

    # Cancel (SIGTERM) of the resumed run as soon as it started (loading weights, in a loader
    # that turns its own errors into DataError): an error line, exit 130, still resumable.
    proc = _worker(project, reg, "--resume")
    events = _read_until(proc, "start")
    assert events[0]["version"] == "v0003"
    proc.send_signal(signal.SIGTERM)
    last = json.loads(proc.stdout.read().strip().splitlines()[-1])
    assert proc.wait() == 130
    assert last["event"] == "error" and last["cancelled"] and "--resume v0003" in last["message"]
    assert reg.active() == "v0002" and reg.staged() == ["v0003"]

    # A correction that changed since the start refuses the resume.
    with ProjectStore.open(project) as store:
        case = open_dataset(store.dataset_root).load("training/case_1")
        sha = store.record(case.key).mask_sha256
        store.save_mask(case, 1 - _correction(case), "dr test")
        store.approve(case.key, "dr test")
        try:
            with pytest.raises(RetrainError, match="training/case_1.*changed"):
                finetune(project, registry=reg, resume="v0003")
        finally:
            store.save_mask(case, _correction(case), "dr test")
            store.approve(case.key, "dr test")
        assert store.record(case.key).mask_sha256 == sha

    events = []
    result = finetune(project, registry=reg, resume="v0003", on_event=events.append)
    assert result.version == "v0003" and reg.versions() == ["v0002", "v0003"]
    assert reg.staged() == [] and reg.active() == "v0002"
    assert reg.record("v0003").parent == "v0002"
    # Epoch 1 was kept (the cancelled run may have saved epoch 2 before the SIGTERM).
    assert [e["epoch"] for e in events if e["event"] == "epoch"][-1:] == [3]
    assert all(e["epoch"] >= 2 for e in events if e["event"] == "epoch")


@pytest.mark.heavy
def test_two_gloo_ranks_fine_tune_and_rank_0_alone_writes(project, ensemble, tmp_path):
    """The DDP path, as torchrun runs it on several GPUs, on two CPU processes (gloo)."""
    reg = Registry(tmp_path / "models", base=ensemble)
    finetune(project, registry=reg, epochs=1, members=["ce-3"], heldout=["training/case_6"])
    reg.promote("v0002")  # the worker's base is the demo: fine-tune the tiny members instead
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node=2", "-m", "strokelens.training", "finetune"]
    command += ["--project", str(project), "--registry", str(reg.root), "--json", "--epochs"]
    command += ["2", "--members", "focal-0", "ce-2", "--heldout", "training/case_6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 1 and kinds.count("done") == 1  # rank 0 alone reports
    assert kinds.count("epoch") == 4 and kinds.count("member_done") == 2
    assert reg.versions() == ["v0002", "v0003"] and reg.staged() == [] and reg.active() == "v0002"
    record = reg.record("v0003")
    assert record.parent == "v0002" and sorted(record.members_trained) == ["ce-2", "focal-0"]
    parent = {m.name: m.sha256 for m in reg.manifest("v0002").members}
    child = {m.name: m.sha256 for m in reg.manifest("v0003").members}
    assert [n for n in parent if parent[n] != child[n]] == ["focal-0", "ce-2"]


def test_worker_reports_bad_input_as_a_json_error_line(project, tmp_path, capsys):
    root = ["--project", str(project), "--registry", str(tmp_path / "models")]
    assert main(["finetune", *root, "--members", "nope", "--json"]) == 1
    out = capsys.readouterr()
    event = json.loads(out.out)
    assert event["event"] == "error" and "members ['nope']" in event["message"]
    assert main(["finetune", *root, "--resume"]) == 1
    assert "no unfinished retrain" in capsys.readouterr().err


def test_torchrun_command_line_repeats_the_options():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    given = ["--project", "p", "--minutes", "2.5", "--members", "a", "b", "--ratio", "0.5"]
    given += ["--heldout", "training/case_1", "--resume", "v0003", "--json", "--lr", "0.001"]
    given += ["--originals-from", "/data/site-a", "--relative"]
    args = parser.parse_args(given)
    again = parser.parse_args(command_line(args)[1:])
    assert command_line(args)[0] == "finetune" and again == args
