"""Profile training steps of the critic-architecture paper preset's WGAN-GP (64 px, batch 64, discrete generator
with M = 64, critic channels 64-128-256) on one device: where a step's time goes.

    python scripts/profile_step.py CRITIC [DEVICE] [STEPS]      (CRITIC: fc, cnn-gap, cnn-fc; DEVICE: cuda, cpu)

Runs 3 steps to warm up, then ``STEPS`` (default 5) under ``torch.profiler`` and prints: the wall time a step,
the operators called a step, the host-device synchronisations a step (``aten::_local_scalar_dense``: a Python
float read off a device tensor), and the operators that take the most device (else host) time. The data are
seeded random 64x64 images, since a step's time does not depend on the pixels.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from wganlab.train import TrainConfig, Trainer


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    critic, device = argv[0], argv[1] if len(argv) > 1 else "cuda"
    steps = int(argv[2]) if len(argv) > 2 else 5
    cfg = TrainConfig(data="noise:n=10000:size=64:channels=1", m=64, critic=critic, c_channels=(64, 128, 256),
                      lr_g=1e-4, steps=100, track=(), device=device)
    t = Trainer(cfg, Path(tempfile.mkdtemp()))
    sync = torch.cuda.synchronize if t.device.type == "cuda" else (lambda: None)
    for _ in range(3):
        t.iteration(diagnose=False)
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if t.device.type == "cuda" else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(steps):
            t.iteration(diagnose=False)
        sync()
    wall = (time.perf_counter() - t0) / steps
    ops = prof.key_averages()
    aten = sum(e.count for e in ops if e.key.startswith("aten::")) / steps
    syncs = sum(e.count for e in ops if e.key == "aten::_local_scalar_dense") / steps
    print(f"{critic} on {t.device}: {wall * 1e3:.1f} ms a step under the profiler, {aten:.0f} aten operators and "
          f"{syncs:.0f} host-device synchronisations a step")
    key = "self_cuda_time_total" if t.device.type == "cuda" else "self_cpu_time_total"
    print(ops.table(sort_by=key, row_limit=25))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
