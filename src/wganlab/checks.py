"""Validation of user input: turn arrays into checked tensors or raise a one-line InputError."""

from __future__ import annotations

import numpy as np
import torch

from wganlab.errors import InputError


def native_order(a: np.ndarray) -> np.ndarray:
    """``a`` in the machine's byte order (a big-endian array converted; torch reads native order only)."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def as_tensor(x, name: str, dtype: torch.dtype | None = None, finite: bool = True) -> torch.Tensor:
    """``x`` (numpy array, torch tensor or nested list) as a finite, non-empty floating tensor.

    Keeps the device of a tensor input; casts integers and booleans to float32 (or ``dtype``). ``finite=False``
    leaves the finite check (:func:`require_finite`) to a caller that reads every value anyway.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(native_order(np.asarray(x)))
        except (TypeError, ValueError) as e:
            raise InputError(f"{name}: cannot read as a numeric array ({e})") from None
    if t.dtype in (torch.complex64, torch.complex128):
        raise InputError(f"{name}: complex values are not supported")
    if not (t.is_floating_point() or t.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16,
                                                   torch.int32, torch.int64)):
        raise InputError(f"{name}: unsupported dtype {t.dtype}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float32)
    if t.ndim == 0 or t.shape[0] == 0:
        raise InputError(f"{name}: empty set (shape {tuple(t.shape)})")
    if t.numel() == 0:
        raise InputError(f"{name}: has zero-size dimensions (shape {tuple(t.shape)})")
    if finite:
        require_finite(t, name)
    return t


def require_finite(t: torch.Tensor, name: str) -> None:
    """Raise unless every value of ``t`` is finite."""
    # a finite sum proves every entry finite in one pass, without a boolean copy of a large set
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise InputError(f"{name}: contains {bad} NaN or infinite value(s)")


def as_points(x, name: str, dtype: torch.dtype | None = None, finite: bool = True) -> torch.Tensor:
    """A point set as an ``(n, d)`` tensor: images ``(n, C, H, W)`` are flattened, a 1-D array is
    read as ``n`` points in one dimension (``finite``: see :func:`as_tensor`)."""
    t = as_tensor(x, name, dtype, finite)
    if t.ndim == 1:
        return t[:, None]
    return t.reshape(t.shape[0], -1)


def same_dim(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    """Raise unless two point sets (``n x ...``) have the same per-point shape."""
    if x.shape[1:] != y.shape[1:]:
        raise InputError(
            f"dimension mismatch: {names[0]} has points of shape {tuple(x.shape[1:])}, "
            f"{names[1]} has {tuple(y.shape[1:])}"
        )


def as_weights(w, n: int, name: str) -> np.ndarray:
    """Probability weights for ``n`` points as float64: uniform when ``w`` is None; otherwise
    non-negative, finite, of length ``n`` and summing to 1 (within 1e-6, then renormalised)."""
    if w is None:
        return np.full(n, 1.0 / n)
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().numpy()
    try:
        a = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: weights are not numeric") from None
    if a.ndim != 1 or a.shape[0] != n:
        raise InputError(f"{name}: expected {n} weights (one per point), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: weights contain NaN or infinite values")
    if (a < 0).any():
        raise InputError(f"{name}: weights must be non-negative (min {a.min():.3g})")
    s = a.sum()
    if abs(s - 1.0) > 1e-6:
        raise InputError(f"{name}: weights must sum to 1 (they sum to {s:.6g})")
    return a / s


def positive_int(v, name: str) -> int:
    """``v`` as an int >= 1, else InputError."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise InputError(f"{name}: expected a positive integer, got {v!r}")
    return int(v)
