"""Device and thread settings shared by training, experiments and benchmarks."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits

from wganlab.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``; asking for an absent GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' asked for but no CUDA device is available (use device 'cpu')")
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}; choose auto, cpu or cuda")


def set_threads(n: int | None) -> None:
    """Use ``n`` intra-op threads in torch and in numpy's BLAS (the exact-OT engine's GEMMs) (None keeps the
    defaults). On shared 2-core machines 1 is safest."""
    if n is not None:
        if n < 1:
            raise ConfigError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(n)
        threadpool_limits(n, user_api="blas")
