"""Fine-tuning the active ensemble on a reviewer's approved corrections: a new registry version.

API (stable: the app's retrain dialog and the site experiment build on it)::

    finetune(project, *, registry=None, members=None, epochs=None, minutes=None, ratio=None,
             originals_from=None, relative=False, heldout=None, device=None, resume=None,
             lr=DEFAULT_LR, config="cpu", on_event=None)
        -> FinetuneResult(version, path, parent, before, after, recommend, duration_s)

    project   review project folder (``ProjectStore``); its APPROVED cases are the corrections
    registry  ``core.registry.Registry`` or its root (default: the user's registry);
              ``Registry(root, base=manifest)`` starts from another base than the bundled demo
    members   member names to fine-tune (default all); the others are copied unchanged
    epochs    epochs per member (default ``DEFAULT_EPOCHS``), or minutes: wall-clock budget of the whole run
    ratio     corrections : original cases = ratio : 1 (original cases of the data set, with
              their ground truth, mixed in against forgetting); None = corrections only
    originals_from  a data set to draw the original cases from instead (the data the parent
              was trained on, when the project's data set holds only the new site); their keys
              are prefixed ``original:`` in the plan and the version record
    relative  the new version reads CBF and CBV relative to each case's brain median
              (``core.preprocessing``), scaled to the reference site's: the medians of the
              parent's own references, else of ``originals_from`` (the parent's training data).
              Vendors scale absolute values differently; the fine-tuned members learn the
              relative ones, the others read them as they are
    heldout   case keys held out (their patients' cases are never trained on); default: a
              deterministic ~20 % of the approved cases' patients
    resume    a staged version name (``registry.staged()``): continue a killed / cancelled run
    on_event  called with each event dict (``start``, ``baseline``, ``epoch``, ``member_done``,
              ``done``; see docs/retrain.md); ``python -m strokelens.training finetune --json``
              prints them one JSON object per line

It never promotes: ``recommend`` is ``registry.promotion_check`` on the held-out cases (neither the
ensemble's DSC nor the fine-tuned members' mean dropped), and ``Registry.promote`` is the user's
decision.

The run is staged in ``registry.staging_dir(version)``: ``plan.json`` (the frozen snapshot: each
correction's mask sha256, the original and held-out cases, the settings), the preprocessing cache
with the corrections as labels, one trainer folder per member (per-epoch checkpoints: a killed
run resumes from its last epoch), ``baseline.json``. Resuming checks every correction's mask
against the snapshot and refuses when one changed. Each member starts from the parent version's
weights (the ``Trainer``'s pretrained path, one stage at ``lr``) and ends with its last epoch's
weights (the held-out cases are measured, never used to pick an epoch). The finished members go
through ``export_ensemble`` (fp16, as the demo is bundled) into the version folder, which the
registry renames into place with its record.

Under ``torchrun`` (DDP) every rank trains; rank 0 alone measures, writes and reports.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from pydantic import BaseModel, Field

from strokelens.core.dataset import open_dataset
from strokelens.core.errors import DataError, StrokeLensError
from strokelens.core.manifest import Manifest, Member, read_manifest
from strokelens.core.metrics import slice_dice
from strokelens.core.models import is_3d
from strokelens.core.output import LOCK_NAME
from strokelens.core.preprocessing import RELATIVE_CHANNELS, ChannelRange, reference_medians
from strokelens.core.project.review import Status
from strokelens.core.project.store import ProjectStore, mask_sha256
from strokelens.core.registry import (
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    ENSEMBLE,
    MANIFEST,
    CaseEntry,
    Registry,
    VersionName,
    VersionRecord,
    check_version,
    now,
    promotion_check,
)
from strokelens.core.safepath import path_inside
from strokelens.core.schema import STRICT, Finite, Int, Positive, Str, load
from strokelens.core.weights import file_sha256, load_weights, read_metadata, save_weights
from strokelens.core.writer import atomic_write_bytes
from strokelens.training.cache import CacheReader, CacheUnion, build_cache
from strokelens.training.config import TrainConfig, load_config
from strokelens.training.distributed import barrier, is_main
from strokelens.training.export import export_ensemble
from strokelens.training.trainer import Trainer, pick_device, predict_cached

#: Epoch bound of a run limited by minutes (the budget stops it first).
MAX_EPOCHS_BY_TIME = 1000
#: Share of the approved cases' patients held out when no held-out cases are given.
HELDOUT_SHARE = 0.2
PLAN = "plan.json"
BASELINE = "baseline.json"
FINAL = "final.safetensors"
DONE = "done.json"
#: Key prefix of original cases from another data set (``originals_from``), and their cache.
ORIGINAL = "original:"
ORIGINALS_CACHE = "originals.h5"
#: The held-out cases under the parent's preprocessing, for its baseline (relative versions).
PARENT_CACHE = "parent.h5"

Event = dict[str, Any]


class RetrainError(StrokeLensError):
    """A fine-tune that cannot run as asked (no corrections, a mask changed, ...)."""


class Plan(BaseModel):
    """The schema of ``plan.json``: everything a resumed run must repeat exactly."""

    model_config = STRICT
    version: VersionName
    parent: VersionName
    created: Str
    project: Str
    dataset_root: Str
    members: Annotated[list[Str], Field(min_length=1)]
    epochs: Annotated[Int, Field(ge=1)] | None
    minutes: Positive | None
    ratio: Positive | None
    lr: Positive
    config: Str
    corrections: dict[Str, Annotated[Str, Field(pattern=r"^[0-9a-f]{64}$")]]
    originals: list[Str]
    #: the data set the original cases come from (their keys carry ``ORIGINAL``); None: the
    #: project's own data set
    originals_root: Str | None = None
    #: channel -> the brain median the new version scales it to (``relative``); empty: the
    #: parent's preprocessing as it is
    relative: dict[Str, Positive] = {}
    heldout: Annotated[list[Str], Field(min_length=1)]
    #: held-out approved corrections (their truth) -> mask sha256; other held-out cases: OT
    heldout_masks: dict[Str, Annotated[Str, Field(pattern=r"^[0-9a-f]{64}$")]]
    heldout_patients: list[Str]


class _Done(BaseModel):
    model_config = STRICT
    heldout_dsc: Annotated[Finite, Field(ge=0, le=1)]
    epochs: Int


@dataclass(frozen=True)
class FinetuneResult:
    version: str
    path: Path  # the new version's folder
    parent: str
    before: dict[str, float]
    after: dict[str, float]
    recommend: bool
    duration_s: float


def finetune(
    project: str | Path,
    *,
    registry: Registry | str | Path | None = None,
    members: list[str] | None = None,
    epochs: int | None = None,
    minutes: float | None = None,
    ratio: float | None = None,
    originals_from: str | Path | None = None,
    relative: bool = False,
    heldout: list[str] | None = None,
    device: str | None = None,
    resume: str | None = None,
    lr: float = DEFAULT_LR,
    config: str = "cpu",
    on_event: Callable[[Event], None] | None = None,
) -> FinetuneResult:
    """Fine-tune the active version on ``project``'s approved corrections (see the module)."""
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    emit = on_event if on_event is not None and is_main() else (lambda event: None)
    started = time.monotonic()
    with ProjectStore.open(project, writable=False) as store:
        if resume is not None:
            version = _checked_version(resume)
            if version not in reg.staged():
                raise RetrainError(f"{reg.root}: no unfinished retrain {version} to resume")
            stage = reg.staging_dir(version)
            lock = _lock(stage, version)
            try:
                plan = load(stage / PLAN, Plan, "retrain plan")
                if Path(plan.project) != Path(project).resolve():
                    raise RetrainError(f"{version} was started on the project {plan.project}")
                labels = _snapshot_masks(store, plan)
            except BaseException:
                lock.release()
                raise
        else:
            _check_settings(epochs, minutes, ratio, lr)
            if originals_from is not None and ratio is None:
                raise RetrainError("originals_from needs a ratio (corrections : original cases)")
            plan = _new_plan(
                store, reg, members, epochs, minutes, ratio, originals_from, relative, heldout,
                lr, config,
            )  # fmt: skip
            labels = _snapshot_masks(store, plan)
            version = _shared(reg.allocate() if is_main() else None)
            plan = plan.model_copy(update={"version": version})
            stage = reg.staging_dir(version)
            lock = _lock(stage, version)
            if is_main():
                _write_json(stage / PLAN, plan.model_dump(mode="json"))
    try:
        return _run(reg, plan, stage, labels, device, emit, started)
    finally:
        lock.release()


def _shared(value):
    """Rank 0's ``value`` on every rank (under DDP)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _checked_version(name: str) -> str:
    try:
        return check_version(name)
    except ValueError as exc:
        raise RetrainError(str(exc)) from None


def _lock(stage: Path, version: str) -> FileLock:
    """The staged version's lock (rank 0's under DDP), held for the whole run."""
    lock = FileLock(stage / ".retrain.lock", timeout=0)
    if not is_main():
        return lock
    try:
        lock.acquire()
    except Timeout:
        raise RetrainError(f"{version} is being trained by another process") from None
    return lock


def _references(parent: Manifest, originals_root: Path | None, relative: bool) -> dict[str, float]:
    """The brain medians the new version scales ``RELATIVE_CHANNELS`` to (empty: not relative):
    the parent's own, else those of the data the originals come from."""
    if not relative:
        return {}
    own = {c: parent.preprocessing[c].reference for c in RELATIVE_CHANNELS}
    if all(v is not None for v in own.values()):
        return own
    if originals_root is None:
        raise RetrainError(
            "relative maps need the reference site's data: give the data the parent was "
            "trained on (originals_from / --originals-from)"
        )
    try:
        return reference_medians(open_dataset(originals_root))
    except ValueError as exc:
        raise RetrainError(f"{originals_root}: {exc}") from None


def scaling_of(parent: Manifest, plan: Plan) -> dict[str, ChannelRange]:
    """The new version's preprocessing: the parent's, with ``plan.relative``'s references."""
    return {
        c: replace(r, reference=plan.relative.get(c, r.reference))
        for c, r in parent.preprocessing.items()
    }


def _check_settings(epochs, minutes, ratio, lr) -> None:
    if epochs is not None and minutes is not None:
        raise RetrainError("give epochs or minutes, not both")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise RetrainError(f"epochs must be a whole number of at least 1, not {epochs!r}")
    for name, value in (("minutes", minutes), ("ratio", ratio), ("lr", lr)):
        if value is not None and not (isinstance(value, int | float) and 0 < value < float("inf")):
            raise RetrainError(f"{name} must be a positive number, not {value!r}")


def _approved(store: ProjectStore) -> dict[str, str]:
    return {
        r.key: r.mask_sha256
        for r in store.cases()
        if r.status is Status.APPROVED and r.mask_sha256 is not None
    }


def _order(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _new_plan(
    store, reg, members, epochs, minutes, ratio, originals_from, relative, heldout, lr, config
) -> Plan:
    approved = _approved(store)
    if not approved:
        raise RetrainError(f"{store.path}: no approved correction to train on")
    dataset = open_dataset(store.dataset_root)
    refs = {ref.key: ref for ref in dataset if not ref.errors}
    missing = sorted(set(approved) - set(refs))
    if missing:
        raise RetrainError(f"approved cases not in the data set (or unreadable): {missing}")
    patient = {key: ref.patient or key for key, ref in refs.items()}
    if heldout:
        unknown = [
            k for k in heldout if k not in approved and not (k in refs and refs[k].has_truth)
        ]
        if unknown:
            raise RetrainError(
                f"held-out cases {unknown} are neither approved corrections nor cases with a "
                "ground truth"
            )
        held_patients = sorted({patient[k] for k in heldout})
        held = sorted({*heldout, *(k for k in approved if patient[k] in held_patients)})
    else:
        patients = sorted({patient[k] for k in approved}, key=_order)
        if len(patients) < 2:
            raise RetrainError(
                "the approved corrections come from one patient: give held-out cases "
                "(--heldout) of another patient, or approve more"
            )
        n = min(max(1, round(HELDOUT_SHARE * len(patients))), len(patients) - 1)
        held_patients = sorted(patients[:n])
        held = sorted(k for k in approved if patient[k] in held_patients)
    corrections = {k: s for k, s in sorted(approved.items()) if patient[k] not in held_patients}
    if not corrections:
        raise RetrainError("every approved correction is held out: nothing is left to train on")
    originals: list[str] = []
    originals_root = None if originals_from is None else Path(originals_from).resolve()
    if ratio is not None:
        if originals_root is None:  # the project's own cases, of patients not held out
            pool = [
                k
                for k, ref in refs.items()
                if ref.has_truth and k not in approved and patient[k] not in held_patients
            ]
        else:  # the data the parent was trained on: the project's may hold only the new site
            pool = [r.key for r in open_dataset(originals_root) if r.has_truth and not r.errors]
            if not pool:
                raise RetrainError(f"{originals_root}: no case with a ground truth to mix in")
        want = max(1, round(len(corrections) / ratio))
        originals = sorted(sorted(pool, key=_order)[:want])
        if originals_root is not None:
            originals = [ORIGINAL + k for k in originals]
    parent = reg.active()
    manifest = reg.manifest(parent)
    names = [m.name for m in manifest.members]
    chosen = list(members) if members else names
    unknown = [m for m in chosen if m not in names]
    if unknown or len(set(chosen)) != len(chosen):
        raise RetrainError(f"members {chosen}: {parent} has the members {names}, each once")
    load_config(config)  # a bad config is refused now, not after the set-up
    return Plan(
        version="v0001",  # replaced by the allocated name
        parent=parent,
        created=now(),
        project=str(Path(store.path).resolve()),
        dataset_root=str(store.dataset_root),
        members=[n for n in names if n in chosen],
        epochs=None if minutes is not None else (epochs or DEFAULT_EPOCHS),
        minutes=minutes,
        ratio=ratio,
        lr=float(lr),
        config=config,
        corrections=corrections,
        originals=originals,
        originals_root=None if originals_root is None else str(originals_root),
        relative=_references(manifest, originals_root, relative),
        heldout=held,
        heldout_masks={k: approved[k] for k in held if k in approved},
        heldout_patients=held_patients,
    )


def _snapshot_masks(store: ProjectStore, plan: Plan) -> dict[str, np.ndarray]:
    """The snapshot's masks (trained and held-out corrections), each checked against its
    sha256 when the retrain started; RetrainError naming the cases that changed since."""
    approved = _approved(store)
    frozen = {**plan.corrections, **plan.heldout_masks}
    changed = sorted(k for k, sha in frozen.items() if approved.get(k) != sha)
    if changed:
        raise RetrainError(
            f"the corrections of {changed} changed (or are no longer approved) since retrain "
            f"{plan.version} started; start a new retrain"
        )
    masks = {key: store.load_mask(key) for key in frozen}
    moved = sorted(k for k, mask in masks.items() if mask_sha256(mask) != frozen[k])
    if moved:  # saved again while being read
        raise RetrainError(f"the corrections of {moved} changed while the retrain read them")
    return masks


def _run(reg, plan: Plan, stage: Path, labels, device, emit, started) -> FinetuneResult:
    parent = reg.manifest(plan.parent)
    dataset = open_dataset(plan.dataset_root)
    apart = plan.originals_root is not None  # the originals are another data set's: own cache
    keys = [*plan.corrections, *([] if apart else plan.originals), *plan.heldout]
    cache_path = stage / "cache.h5"
    scaling = scaling_of(parent, plan)
    changed = scaling != parent.preprocessing  # the parent is measured on its own inputs
    if is_main():
        build_cache(dataset, cache_path, scaling=scaling, keys=keys, labels=labels)
        if apart:
            inner = [k.removeprefix(ORIGINAL) for k in plan.originals]
            originals = open_dataset(plan.originals_root)
            build_cache(originals, stage / ORIGINALS_CACHE, scaling, keys=inner)
        if changed:
            build_cache(
                dataset, stage / PARENT_CACHE, parent.preprocessing, plan.heldout, labels=labels
            )
    barrier()
    cache = CacheReader(cache_path)
    if apart:
        cache = CacheUnion({"": cache, ORIGINAL: CacheReader(stage / ORIGINALS_CACHE)})
    train_keys = [*plan.corrections, *plan.originals]
    emit(
        {
            "event": "start",
            "version": plan.version,
            "parent": plan.parent,
            "members": plan.members,
            "epochs": plan.epochs,
            "minutes": plan.minutes,
            "train_cases": train_keys,
            "heldout_cases": plan.heldout,
            "corrections": list(plan.corrections),
            "original_cases": plan.originals,
        }
    )
    torch_device = pick_device(device)
    if changed:
        own = CacheReader(stage / PARENT_CACHE)
        try:
            before = _baseline(stage, parent, own, plan.heldout, torch_device)
        finally:
            own.close()
    else:
        before = _baseline(stage, parent, cache, plan.heldout, torch_device)
    for name in [m.name for m in parent.members] + [ENSEMBLE]:
        emit({"event": "baseline", "member": name, "heldout_dsc": before[name]})
    base = load_config(plan.config)
    budget = None if plan.minutes is None else plan.minutes * 60 / len(plan.members)
    trained: dict[str, Path] = {}
    for member in parent.members:
        if member.name not in plan.members:
            continue
        folder = path_inside(stage, "members", member.name)
        done = _fit_member(
            plan, base, parent, member, cache, train_keys, folder, device, emit, budget
        )
        trained[member.name] = folder / FINAL
        emit({"event": "member_done", "member": member.name, "heldout_dsc": done.heldout_dsc})
    result = None
    if is_main():
        result = _finish(
            reg, plan, stage, parent, scaling, trained, cache, torch_device, before, started
        )
        emit(
            {
                "event": "done",
                "version": plan.version,
                "before": result.before,
                "after": result.after,
                "recommend": result.recommend,
                "duration_s": result.duration_s,
                "path": str(result.path),
            }
        )
    cache.close()
    barrier()
    if is_main():  # after "done", so that a cancel in between finds the version finished
        reg.discard_staged(plan.version)
    return result


def _probabilities(manifest: Manifest, cache: CacheReader, keys, device) -> dict[str, dict]:
    """Member name -> case key -> probabilities ``(z, y, x)`` on the cached held-out cases."""
    out = {}
    for m in manifest.members:
        model, config, _ = load_weights(manifest.weights_path(m), sha256=m.sha256, device=device)
        out[m.name] = {k: predict_cached(model, cache, k, device, is_3d(config)) for k in keys}
    return out


def heldout_dsc(probabilities: dict[str, np.ndarray], cache: CacheReader) -> float:
    """Mean over cases of the 3D Dice at 0.5 (as ``Trainer.validate`` measures it)."""
    scores = [
        slice_dice((p >= 0.5)[None], cache.label(key)[None]).dice
        for key, p in probabilities.items()
    ]
    return float(np.mean(scores))


def _scores(probs: dict[str, dict], cache: CacheReader, keys) -> dict[str, float]:
    scores = {name: heldout_dsc(p, cache) for name, p in probs.items()}
    mean = {k: np.mean([p[k] for p in probs.values()], axis=0) for k in keys}
    scores[ENSEMBLE] = heldout_dsc(mean, cache)
    return scores


def _baseline(stage: Path, parent: Manifest, cache, keys, device) -> dict[str, float]:
    path = stage / BASELINE
    if path.exists():
        return load(path, dict[Str, Annotated[Finite, Field(ge=0, le=1)]], "retrain baseline")
    scores = None
    if is_main():
        scores = _scores(_probabilities(parent, cache, keys, device), cache, keys)
        _write_json(path, scores)
    return _shared(scores)


class _OutOfTime(Exception):
    """Internal: a member's share of the minutes is spent (raised after a saved epoch)."""


def _fit_member(
    plan, base, parent, member: Member, cache, train_keys, folder, device, emit, budget
):
    """Fine-tune one member (resuming from its checkpoint); its final weights and ``done.json``."""
    if (folder / DONE).exists() and (folder / FINAL).exists():
        return load(folder / DONE, _Done, "fine-tuned member")
    source = parent.weights_path(member)
    if file_sha256(source) != member.sha256.lower():
        raise DataError(source, f"sha256 differs from the manifest's {member.sha256}")
    model_config, _ = read_metadata(source)
    max_epochs = plan.epochs or MAX_EPOCHS_BY_TIME
    schedule = replace(
        base.schedule,
        max_epochs=max_epochs,
        stage1_epochs=0,
        lr=plan.lr,
        lr_patience=max_epochs,
        early_stop=max_epochs,
        samples_per_epoch=0,
        freeze_bn=True,  # a few corrections: their batch statistics would drift the stored ones
    )
    config = TrainConfig(
        model=model_config,
        losses=(member.loss,),
        loss_params={k: v for k, v in base.loss_params.items() if k == member.loss},
        pretrained=str(source.resolve()),
        schedule=schedule,
        augment=base.augment,
        folds=base.folds,
        source=base.source,
    )
    meta = {"finetuned_from": plan.parent, "member": member.name, "version": plan.version}
    trainer = Trainer(config, cache, train_keys, plan.heldout, folder, member.loss, device, meta)
    t0 = time.monotonic()

    def on_epoch(record: dict) -> None:
        elapsed = time.monotonic() - t0
        emit(
            {
                "event": "epoch",
                "member": member.name,
                "epoch": record["epoch"],
                "epochs": plan.epochs,
                "loss": record["loss"],
                "heldout_dsc": record["val_dice"],
                "elapsed_s": round(elapsed, 3),
            }
        )
        if budget is not None and _agree(elapsed >= budget):
            raise _OutOfTime

    try:
        trainer.fit(resume=True, on_epoch=on_epoch)
    except _OutOfTime:
        pass
    dsc = trainer.validate()  # the last epoch's weights: what the version keeps
    done = _Done(heldout_dsc=dsc, epochs=trainer.state.epoch)
    if is_main():
        save_weights(trainer.model, folder / FINAL, model_config, {**meta, "epochs": done.epochs})
        _write_json(folder / DONE, done.model_dump())
    barrier()
    return done


def _agree(flag: bool) -> bool:
    """Whether any rank says yes (under DDP every rank must stop at the same epoch)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _finish(
    reg, plan, stage, parent, scaling, trained, cache, device, before, started
) -> FinetuneResult:
    """Export the new ensemble, measure it, and hand it to the registry with its record."""
    trained_members = [
        replace(m, weights=str(trained[m.name].resolve()), sha256=file_sha256(trained[m.name]))
        for m in parent.members
        if m.name in trained
    ]
    source = Manifest(f"{parent.name}-{plan.version}", trained_members, scaling)
    built = stage / "built"
    shutil.rmtree(built, ignore_errors=True)  # a run killed while exporting
    exported = read_manifest(
        export_ensemble(source.save(stage / "source.json"), built, allow_external_members=True)
    )
    (built / LOCK_NAME).unlink(missing_ok=True)
    new = {m.name: m for m in exported.members}
    members = []
    for m in parent.members:  # members not fine-tuned: the parent's files, byte for byte
        if m.name not in new:
            target = path_inside(built, f"{m.name}.safetensors")
            shutil.copyfile(parent.weights_path(m), target)
            if file_sha256(target) != m.sha256.lower():
                raise DataError(parent.weights_path(m), "changed while it was copied")
            new[m.name] = replace(m, weights=target.name)
        members.append(new[m.name])
    meta = {"version": plan.version, "parent": plan.parent, "project": plan.project}
    Manifest(source.name, members, scaling, meta=meta).save(built / MANIFEST)
    after = _scores(
        _probabilities(read_manifest(built / MANIFEST), cache, plan.heldout, device),
        cache,
        plan.heldout,
    )
    base = load_config(plan.config)
    record = VersionRecord(
        version=plan.version,
        parent=plan.parent,
        created=plan.created,
        duration_s=round(time.monotonic() - started, 3),
        project=plan.project,
        members_trained=plan.members,
        train_cases=[
            *(
                CaseEntry(key=k, source="correction", mask_sha256=s)
                for k, s in plan.corrections.items()
            ),
            *(CaseEntry(key=k, source="original") for k in plan.originals),
        ],
        heldout_cases=plan.heldout,
        heldout_patients=plan.heldout_patients,
        before=before,
        after=after,
        recommend=promotion_check(before, after, plan.members)[0],
        config={
            "config": plan.config,
            "epochs": plan.epochs,
            "minutes": plan.minutes,
            "ratio": plan.ratio,
            "lr": plan.lr,
            "relative": plan.relative,
            "train": json.loads(json.dumps(base.as_dict(), default=str)),
        },
    )
    path = reg.finish(plan.version, built, record)
    return FinetuneResult(
        plan.version, path, plan.parent, before, after, record.recommend, record.duration_s
    )


def _write_json(path: Path, data) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
