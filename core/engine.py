"""The ensemble inference engine: every member of a manifest on every slice of a case.

``Engine(read_manifest(path))`` loads the members (each file's sha256 checked), then
``engine.predict(case, priority_slice=k, on_slice=cb, progress=pb, cancel=event)`` returns a
:class:`~strokelens.core.prediction.Prediction` with each member's probabilities kept, so the
focal and cross-entropy members stay comparable; ``engine.predict_iter`` yields the same results
slice by slice, for a viewer that draws them as they come.

Order: slice ``k`` (the one on screen) alone first, then the others nearest-first (k+1, k-1, k+2,
...) in batches. Each batch goes through the members one after the other while it stays in cache;
stacking the members with ``torch.func`` (vmap) was no faster on the CPU (docs/inference.md).

Speed: inference mode, BatchNorm folded into the preceding convolutions (checked numerically on a
trial input, else the member runs unfolded), channels-last tensors. Precision ``"auto"`` is bf16
autocast where the device computes bf16 in hardware (CUDA; CPUs with AVX-512 BF16 or AMX, where
it halves the time), fp32 elsewhere; ``"fp32"`` gives the exact fp32 results.
Device: ``"auto"`` is CUDA, then MPS, then CPU. When an accelerator runs out of memory the batch
is halved and retried, at batch 1 the engine moves to the CPU and carries on.

Cancellation: ``cancel`` (a ``threading.Event`` or a callable) is checked before each member's
pass over a batch, so a prediction stops within one member-batch; ``predict``/``predict_iter``
then raise :class:`Cancelled`, whose ``prediction`` holds the slices finished so far (``done``);
passed back as ``resume`` (say with the slice now on screen as priority) it is completed without
running those slices again.

Only 2D slice models (PSPNet, 2D U-Net) are members; 3D networks need the whole volume at once,
which defeats slice priority, and are refused with a DataError. One engine runs one prediction at
a time; ``threads`` sets torch's process-wide CPU thread count.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from strokelens.core.case import CHANNELS, Case
from strokelens.core.devices import is_out_of_memory, native_bf16, select_device, set_threads
from strokelens.core.editing.components import check_min_ml
from strokelens.core.errors import DataError, StrokeLensError
from strokelens.core.manifest import Manifest, Member, read_manifest
from strokelens.core.models import is_3d
from strokelens.core.prediction import Prediction
from strokelens.core.preprocessing import normalize
from strokelens.core.weights import load_weights

#: Slices per batch by device kind (the OOM fallback lowers it).
BATCH_SIZES = {"cpu": 4, "cuda": 16, "mps": 8}
PRECISIONS = ("auto", "fp32", "bf16")

Progress = Callable[[int, int], None]  # (member-slices done, total)
CancelFlag = threading.Event | Callable[[], bool] | None


class Cancelled(StrokeLensError):
    """The prediction was cancelled; ``prediction`` holds the slices done (``prediction.done``)."""

    def __init__(self, prediction: Prediction):
        self.prediction = prediction
        done = int(prediction.done.sum())
        super().__init__(
            f"{prediction.case_key}: cancelled after {done} of {prediction.done.size} slices"
        )


class _CancelRequest(Exception):
    """Internal: unwinds a batch when the cancel flag is seen."""


@dataclass
class SliceResult:
    """One finished slice ``z``: views into the (still growing) ``prediction``."""

    z: int
    prediction: Prediction

    @property
    def members(self) -> np.ndarray:
        return self.prediction.members[:, self.z]

    def mean(self, source: str = "all") -> np.ndarray:
        return self.prediction.mean(source)[self.z]

    @property
    def uncertainty(self) -> np.ndarray:
        return self.prediction.uncertainty[self.z]


def slice_order(n_slices: int, priority: int | None = None) -> list[int]:
    """``priority`` first, then the others nearest-first (after before before); else 0..n-1."""
    if priority is None:
        return list(range(n_slices))
    if not 0 <= priority < n_slices:
        raise ValueError(f"priority slice {priority} outside 0..{n_slices - 1}")
    order = [priority]
    for d in range(1, n_slices):
        order += [z for z in (priority + d, priority - d) if 0 <= z < n_slices]
    return order


def _fold_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """Names of (Conv2d, BatchNorm2d) children where the BN directly follows the conv.

    Sequential neighbours, and the ``convN``/``bnN`` attribute pairs of ResNet blocks and stems.
    """
    children = dict(module.named_children())
    if isinstance(module, nn.Sequential):
        names = list(children)
        candidates = zip(names, names[1:], strict=False)
    else:
        candidates = ((n, "bn" + n[4:]) for n in children if n.startswith("conv"))
    return [
        (c, b)
        for c, b in candidates
        if isinstance(children.get(c), nn.Conv2d) and isinstance(children.get(b), nn.BatchNorm2d)
    ]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each BN merged into the conv before it.

    The result is checked against ``model`` on a random trial input; if it differs (a model whose
    ``convN``/``bnN`` are not applied in sequence), ``model`` itself is returned.
    """
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        for conv_name, bn_name in _fold_pairs(module):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
    trial = torch.rand(1, len(CHANNELS), 24, 20, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = model(trial), folded(trial)
    scale = float(expected.abs().max()) + 1e-6
    return folded if float((expected - got).abs().max()) <= 1e-4 * scale else model


def _is_cancelled(cancel: CancelFlag) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


class Engine:
    """The loaded members of one ensemble, ready to predict cases."""

    def __init__(
        self,
        manifest: Manifest,
        device: str | None = "auto",
        threads: int | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
        min_component_ml: float = 0.0,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        set_threads(threads)
        self.manifest = manifest
        self.device = select_device(device)
        self.batch_size = batch_size or BATCH_SIZES.get(self.device.type, 4)
        self.precision = precision
        self.min_component_ml = check_min_ml(min_component_ml)
        start = time.perf_counter()
        self.models = [self._load(m) for m in manifest.members]
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def from_manifest(
        cls, path: str | Path, allow_external_members: bool = False, **kwargs
    ) -> Engine:
        """The engine of the manifest at ``path`` (see ``read_manifest``); ``kwargs`` as for
        the constructor."""
        return cls(read_manifest(path, allow_external_members), **kwargs)

    @property
    def members(self) -> list[Member]:
        return self.manifest.members

    def _load(self, member: Member) -> nn.Module:
        path = self.manifest.weights_path(member)
        model, config, _ = load_weights(path, sha256=member.sha256)
        if is_3d(config):
            raise DataError(path, f"{config['arch']} is a 3D network; the engine runs 2D members")
        if config.get("in_channels") != len(CHANNELS) or config.get("classes") != 1:
            raise DataError(path, f"member must map {len(CHANNELS)} channels to 1 logit: {config}")
        model = fold_batchnorm(model)
        return model.to(self.device, memory_format=torch.channels_last)

    @property
    def bf16(self) -> bool:
        """Whether members run under bf16 autocast (see ``precision``)."""
        return self.precision == "bf16" or (self.precision == "auto" and native_bf16(self.device))

    def _to_cpu(self) -> None:
        """The out-of-memory fallback of last resort: carry on on the CPU."""
        self.device = torch.device("cpu")
        self.models = [m.to(self.device) for m in self.models]
        self.batch_size = BATCH_SIZES["cpu"]

    def _chunks(self, order: list[int]) -> list[list[int]]:
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _run_batch(
        self, volume: torch.Tensor, zs: list[int], report: Callable[[int], None], cancel: CancelFlag
    ) -> np.ndarray:
        """``(M, n, y, x)`` probabilities of slices ``zs``; ``report(n)`` after each member."""
        x = volume[zs].to(self.device, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last)
        out = np.empty((len(self.models), len(zs), *x.shape[-2:]), np.float32)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        for m, model in enumerate(self.models):
            if _is_cancelled(cancel):
                raise _CancelRequest
            with autocast:
                logits = model(x)
            out[m] = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
            report(len(zs))
        return out

    def predict_iter(
        self,
        case: Case,
        priority_slice: int | None = None,
        progress: Progress | None = None,
        cancel: CancelFlag = None,
        resume: Prediction | None = None,
    ) -> Iterator[SliceResult]:
        """Yield each finished slice (priority first); the last result's prediction is complete.

        ``resume``: a cancelled prediction of this case (``Cancelled.prediction``) to complete
        in place, e.g. with a new priority slice; its finished slices are not run again.
        """
        start = time.perf_counter()
        names = [m.name for m in self.members]
        if resume is None:
            prediction = Prediction.empty(
                case.key,
                case.shape,
                case.spacing,
                names,
                [m.loss for m in self.members],
                self.min_component_ml,
            )
        elif (resume.case_key, resume.shape, resume.member_names) != (case.key, case.shape, names):
            raise ValueError(f"cannot resume {resume.case_key}: another case or ensemble")
        else:
            prediction, prediction.timing = resume, {}
        order = [z for z in slice_order(case.n_slices, priority_slice) if not prediction.done[z]]
        volume = torch.from_numpy(normalize(case, self.manifest.preprocessing))
        prediction.timing["preprocess"] = time.perf_counter() - start
        first = 1 if order and order[0] == priority_slice else self.batch_size
        pending = [batch for batch in [order[:first], *self._chunks(order[first:])] if batch]
        total = len(self.models) * case.n_slices
        done = len(self.models) * int(prediction.done.sum())

        def report(n: int) -> None:
            nonlocal partial
            partial += n
            if progress is not None:
                progress(done + partial, total)

        while pending:
            zs = pending.pop(0)
            partial = 0
            try:
                with torch.inference_mode():
                    probabilities = self._run_batch(volume, zs, report, cancel)
            except _CancelRequest:
                prediction.device = self.device.type
                raise Cancelled(prediction) from None
            except RuntimeError as exc:
                if not is_out_of_memory(exc) or (len(zs) == 1 and self.device.type == "cpu"):
                    raise
                if len(zs) > 1:
                    self.batch_size = len(zs) // 2
                else:
                    self._to_cpu()
                pending = self._chunks([z for batch in [zs, *pending] for z in batch])
                continue
            prediction.update(zs, probabilities)
            done += len(self.models) * len(zs)
            prediction.device = self.device.type
            prediction.precision = "bf16" if self.bf16 else "fp32"
            now = time.perf_counter() - start
            prediction.timing.setdefault("first_slice", now)
            prediction.timing["total"] = now
            for z in zs:
                yield SliceResult(z, prediction)

    def predict(
        self,
        case: Case,
        priority_slice: int | None = None,
        on_slice: Callable[[SliceResult], None] | None = None,
        progress: Progress | None = None,
        cancel: CancelFlag = None,
        resume: Prediction | None = None,
    ) -> Prediction:
        """The whole case's prediction; ``on_slice`` is called with each slice as it finishes."""
        prediction = resume
        for result in self.predict_iter(case, priority_slice, progress, cancel, resume):
            prediction = result.prediction
            if on_slice is not None:
                on_slice(result)
        assert prediction is not None  # a case has at least one slice
        return prediction
