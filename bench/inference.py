"""Ensemble inference speed on the CPU: the engine against a naive loop, and conv throughput.

A 10-member ensemble of PSPNets (ResNet-18 backbone, output stride 8: the paper's PSPNet at a
CPU-friendly depth; random weights with random BN statistics) on a synthetic 16-slice 256 x 256
case. Per round, interleaved, best of ``--rounds`` kept (the machine may be shared):

- engine: ``Engine.predict(case, priority_slice=8)`` with ``precision="auto"`` (bf16 autocast
  where the CPU has AVX-512 BF16 or AMX, else fp32) and with ``precision="fp32"``: time to the
  priority slice and to the whole case;
- stacked: the fp32 engine's folded members and batches, evaluated together with
  ``torch.func.stack_module_state`` + ``vmap`` (each conv becomes a grouped conv) instead of the
  engine's loop over members (``--no-stacked`` skips it);
- naive: each member in turn, slice by slice, fp32, NCHW, ``torch.no_grad`` (no inference mode,
  no BN folding, no channels-last); its first complete slice is ready only when the last member
  reaches it;
- a large 3x3 conv2d (channels-last, fp32 and bf16): the machine's own conv throughput.

Prints the naive/engine ratios (target >= 2), how far each engine's probabilities are from the
naive loop's (and how many voxels of the mean's 0.5-threshold mask differ), and the achieved conv
throughput (FLOPs counted with ``FlopCounterMode``) against the large conv2d of that precision.
Run: python bench/inference.py [--members 10] [--slices 16] [--size 256] [--rounds 2]
     python bench/inference.py --ensemble resources/demo/ensemble.json   (the demo ensemble)
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

from strokelens.core.case import CHANNELS, Case
from strokelens.core.engine import Engine
from strokelens.core.manifest import Manifest, Member, read_manifest
from strokelens.core.models import build_model
from strokelens.core.preprocessing import load_scaling, normalize
from strokelens.core.weights import load_weights, read_metadata, save_weights

CONFIG = {"arch": "pspnet", "backbone": "resnet18", "output_stride": 8}


def make_manifest(folder: Path, n_members: int) -> Manifest:
    members = []
    for i in range(n_members):
        torch.manual_seed(i)
        model = build_model(CONFIG).eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        loss = "focal" if i < n_members // 2 else "ce"
        rel = f"member_{i}.safetensors"
        members.append(
            Member(f"{loss}-{i}", loss, i, rel, save_weights(model, folder / rel, CONFIG))
        )
    manifest = Manifest("bench", members, load_scaling())
    manifest.save(folder / "ensemble.json")
    return manifest


def make_case(n_slices: int, size: int) -> Case:
    """Smooth random maps in each channel's display range (content does not change the cost)."""
    rng = np.random.default_rng(0)
    scaling = load_scaling()
    channels = {}
    for c in CHANNELS:
        coarse = rng.random((n_slices, size // 16, size // 16)).astype(np.float32)
        smooth = np.kron(coarse, np.ones((1, 16, 16), np.float32))
        channels[c] = scaling[c].low + smooth * (scaling[c].high - scaling[c].low)
    return Case("bench", "bench", "", channels, np.eye(4), (5.0, 0.9, 0.9))


def naive(manifest: Manifest, case: Case) -> tuple[np.ndarray, float, float]:
    """(probabilities (M, z, y, x), seconds to the first complete slice, seconds in all)."""
    models = [load_weights(manifest.weights_path(m))[0] for m in manifest.members]
    start = time.perf_counter()
    x = torch.from_numpy(normalize(case, manifest.preprocessing))
    out, first = [], 0.0
    with torch.no_grad():
        for i, model in enumerate(models):
            member = []
            for z in range(case.n_slices):
                member.append(torch.sigmoid(model(x[z : z + 1]))[0, 0].numpy())
                if i == len(models) - 1 and z == 0:
                    first = time.perf_counter() - start
            out.append(np.stack(member))
    return np.stack(out), first, time.perf_counter() - start


def stacked(engine: Engine, case: Case) -> float:
    """Seconds for the case with the engine's members vmapped over stacked weights."""
    params, buffers = stack_module_state(engine.models)
    base = copy.deepcopy(engine.models[0]).to("meta")

    def member(p, b, x):
        return functional_call(base, (p, b), (x,))

    ensemble = vmap(member, in_dims=(0, 0, None))
    start = time.perf_counter()
    x = torch.from_numpy(normalize(case, engine.manifest.preprocessing))
    with torch.inference_mode():
        for i in range(0, case.n_slices, engine.batch_size):
            torch.sigmoid(ensemble(params, buffers, x[i : i + engine.batch_size])).numpy()
    return time.perf_counter() - start


def conv_peak(dtype: torch.dtype, repeats: int = 5) -> float:
    """FLOP/s of a large 3x3 conv (256 -> 256 channels, 4 x 64 x 64), channels-last, best of N."""
    x = torch.rand(4, 256, 64, 64, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.rand(256, 256, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)
    flops = 2 * 4 * 256 * 64 * 64 * 256 * 9
    best = float("inf")
    with torch.inference_mode():
        F.conv2d(x, w, padding=1)
        for _ in range(repeats):
            t = time.perf_counter()
            F.conv2d(x, w, padding=1)
            best = min(best, time.perf_counter() - t)
    return flops / best


def flops_per_slice(config: dict, size: int) -> int:
    model = build_model(config).eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.rand(1, len(CHANNELS), size, size))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, help="engine slices per batch (default: its own)")
    parser.add_argument("--no-stacked", action="store_true", help="skip the vmap variant")
    parser.add_argument(
        "--ensemble",
        help="a real ensemble manifest, e.g. the bundled demo (resources/demo/ensemble.json), "
        "instead of random ResNet-18 PSPNets",
    )
    args = parser.parse_args()

    case = make_case(args.slices, args.size)
    inf = float("inf")
    best = {"first_auto": inf, "auto": inf, "first_fp32": inf, "fp32": inf, "stacked": inf}
    best |= {"first_naive": inf, "naive": inf}
    peak = {torch.float32: 0.0, torch.bfloat16: 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        if args.ensemble:
            manifest = read_manifest(args.ensemble)
            args.members = len(manifest.members)
            config = read_metadata(manifest.weights_path(manifest.members[0]))[0]
        else:
            manifest, config = make_manifest(Path(tmp), args.members), CONFIG
        engines = {
            p: Engine(manifest, "cpu", batch_size=args.batch_size, precision=p)
            for p in ("auto", "fp32")
        }
        auto = engines["auto"]
        print(
            f"{args.members} x {manifest.name}: {config}, "
            f"{args.slices} slices {args.size}x{args.size}, CPU, {torch.get_num_threads()} threads, "
            f"engine batch {auto.batch_size}, auto precision = {'bf16' if auto.bf16 else 'fp32'}; "
            f"{args.members} members loaded in {auto.load_seconds:.1f} s"
        )
        for r in range(args.rounds):
            preds = {}
            for name, engine in engines.items():
                preds[name] = engine.predict(case, priority_slice=args.slices // 2)
                best[f"first_{name}"] = min(
                    best[f"first_{name}"], preds[name].timing["first_slice"]
                )
                best[name] = min(best[name], preds[name].timing["total"])
            if not args.no_stacked:
                best["stacked"] = min(best["stacked"], stacked(engines["fp32"], case))
            for dtype in peak:
                peak[dtype] = max(peak[dtype], conv_peak(dtype))
            reference, first, total = naive(manifest, case)
            best["first_naive"] = min(best["first_naive"], first)
            best["naive"] = min(best["naive"], total)
            times = ", ".join(f"{k} {p.timing['total']:.2f} s" for k, p in preds.items())
            print(f"round {r + 1}: engine {times}, naive {total:.2f} s", flush=True)

    work = flops_per_slice(config, args.size) * args.members * args.slices
    naive_mask = reference.mean(0) >= 0.5
    print(
        f"naive:  first complete slice {best['first_naive']:.2f} s, "
        f"whole case {best['naive']:.2f} s ({work / best['naive'] / 1e9:.0f} GFLOP/s)"
    )
    for name, pred in preds.items():
        dtype = torch.bfloat16 if pred.precision == "bf16" else torch.float32
        rate = work / best[name]
        flips = np.count_nonzero((pred.mean() >= 0.5) != naive_mask)
        print(
            f"engine {name} ({pred.precision}): first (priority) slice {best[f'first_{name}']:.2f} s,"
            f" whole case {best[name]:.2f} s -> naive/engine {best['naive'] / best[name]:.2f}x"
            f" (first slice {best['first_naive'] / best[f'first_{name}']:.0f}x);"
            f" max |p - p_naive| {np.abs(pred.members - reference).max():.1e},"
            f" mask voxels differing {flips}/{naive_mask.size};"
            f" conv {rate / 1e9:.0f} GFLOP/s = {rate / peak[dtype]:.0%} of a large"
            f" {pred.precision} conv2d ({peak[dtype] / 1e9:.0f} GFLOP/s)"
        )
    if not args.no_stacked:
        print(
            f"stacked members (vmap, fp32): whole case {best['stacked']:.2f} s "
            f"(engine fp32 loop {best['fp32']:.2f} s)"
        )
    print(f"work: {work / 1e12:.2f} TFLOP per case")


if __name__ == "__main__":
    main()
