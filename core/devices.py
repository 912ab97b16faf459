"""Where inference runs: device choice, thread count and out-of-memory detection.

``select_device("auto")`` takes CUDA, then Apple's MPS, then the CPU, so one command line works on
a workstation GPU, a Mac and a laptop alike. The engine falls back from an accelerator to the
CPU when memory runs out (``is_out_of_memory``).
"""

from __future__ import annotations

import torch

from strokelens.core.limits import cpu_count

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(name: str | None = "auto") -> torch.device:
    """``name`` as a device; ``"auto"``/None picks CUDA, then MPS, then CPU.

    Raises ValueError for an unknown name or an accelerator this machine does not have.
    """
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES} (or cuda:N), not {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but this torch build sees no CUDA GPU")
    if kind == "mps" and not _mps_available():
        raise ValueError("device 'mps' asked for, but MPS is not available here")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX (there bf16 convolutions run about twice as fast as fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch >= 2.3
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def check_threads(threads: int) -> int:
    """``threads`` if it is a usable CPU thread count, else a ValueError saying the bound.

    More threads than the CPUs this process may use only make them fight (and a huge count
    makes OpenMP allocate a stack per thread), so the count is bounded by ``limits.cpu_count``.
    """
    cpus = cpu_count()
    if not 1 <= threads <= cpus:
        raise ValueError(
            f"threads must be >= 1 and at most {cpus} (the CPUs this process may use), "
            f"not {threads}"
        )
    return threads


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU thread count (process-wide, ``check_threads``); None keeps
    torch's default."""
    if threads is not None:
        torch.set_num_threads(check_threads(threads))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator (or CPU allocator) running out of memory."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
