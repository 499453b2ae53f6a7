"""Torch device choice and CPU thread count for potential evaluation."""

from __future__ import annotations

from superion.errors import SuperionError


def select_device(device: str = "auto") -> str:
    """Return "cpu" or "cuda" for ``auto|cpu|cuda``; SuperionError if CUDA is asked but absent."""
    import torch

    dev = (device or "auto").lower()
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        return "cpu"
    if dev == "cuda" or dev.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SuperionError(f"device '{device}' requested but torch sees no CUDA GPU; use --device cpu or auto")
        return dev
    raise SuperionError(f"unknown device '{device}'; use auto, cpu or cuda")


def set_threads(n: int | None) -> None:
    """Set torch intra-op threads (None leaves torch's default)."""
    if n is None:
        return
    if int(n) < 1:
        raise SuperionError(f"threads must be >= 1 (got {n}); omit it to keep torch's default")
    import torch

    torch.set_num_threads(int(n))
