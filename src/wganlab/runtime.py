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


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else the platform's processor or machine name): rounding of
    the same code differs between CPUs (their BLAS and convolution kernels), so a run says which it ran on."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str = "auto") -> dict:
    """Where and with what code a run is made: the git commit of wganlab's source (``+dirty`` when its tracked
    files differ from it; the package version when not a git checkout), UTC time, machine (system, CPU model, cores),
    load average, Python, torch and the device."""
    import datetime
    import os
    import platform
    import subprocess
    from pathlib import Path

    from wganlab import __version__

    src = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "")[:10]
    if commit and git("status", "-s", "-uno", "."):  # the package's own files only, not results or runs
        commit += "+dirty"
    dev = resolve_device(device)
    return {"time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "commit": commit or f"wganlab {__version__} (not a git checkout)",
            "machine": f"{platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores",
            "load": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"}
