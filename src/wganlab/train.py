"""One readable GAN training loop over (objective, generator, critic, data, schedule).

Each generator step is preceded by ``n_critic`` critic steps (none for critic-free objectives). Every
``track_every`` steps the loop measures the generated distribution against the training set with the
metric registry (exact image W1 of a discrete generator's M atoms, patch SWD, ...) and logs the
objective's own estimate, appending one JSON line to ``metrics.jsonl``. A run folder holds the resolved
config (written first), metrics, image grids from a fixed latent batch, a final nearest-neighbour grid,
a checksummed checkpoint (model, optimisers, every RNG state, step, config) and a summary. ``resume``
continues a killed run from its last checkpoint and reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from wganlab import checkpoint, data, metrics
from wganlab.config import MAX_PROJECTIONS, replace, to_dict
from wganlab.errors import ConfigError, InputError
from wganlab.images import enlarge, save_image_grid
from wganlab.memory import check_memory
from wganlab.models import build_critic, build_generator
from wganlab.objectives import OBJECTIVES, backward, build_objective
from wganlab.runs import (
    append_jsonl,
    atomic_write_bytes,
    check_output_folder,
    lock_run_dir,
    new_run_dir,
    read_json,
    read_jsonl,
    truncate_jsonl,
    write_json,
)
from wganlab.runtime import resolve_device, set_threads


@dataclass
class TrainConfig:
    """Everything a training run needs. Defaults: Elnekave & Weiss's discrete WGAN-GP on squares
    (M = 64 fixed latents, FC generator 64 -> 128 -> image, FC critic with 1024 hidden units, Adam
    betas (0.5, 0.9), lr 1e-4 / 1e-3 for generator / critic as in their published commands, n_critic 5,
    batch 64); the number of steps is ours (the reference used up to 300,000 on a GPU)."""

    # data
    data: str = "squares:size=32"
    data_root: str | None = None
    # generator
    generator: str = "fc"  # fc | conv
    z_dim: int = 64
    m: int | None = 64  # number of fixed latents; None = continuous Gaussian latent
    latent_noise: float = 0.0
    g_hidden: int = 128
    g_depth: int = 1
    g_width: int = 64  # conv generator base channels
    # critic (or assigner, for the assignment method)
    critic: str = "fc"  # fc | cnn-gap | cnn-fc | groupsort
    c_hidden: int = 1024
    c_depth: int = 1
    c_channels: tuple[int, ...] = (64, 64, 64)
    c_kernel: int = 3
    c_stride: int = 2
    lipschitz: str = "bjorck"  # groupsort weights: bjorck | spectral
    # objective
    # wgan-gp | wgan-wc | ctransform | ceps-transform | nsgan | sinkhorn | assignment | assignment-lse
    objective: str = "wgan-gp"
    gp_lambda: float = 10.0
    clip: float = 0.01
    eps: float = 1.0
    cost: str = "euclidean"
    generator_cost: str | None = None
    cost_scale: float = 1.0
    # optimisation
    steps: int = 1000  # generator updates
    n_critic: int = 5
    batch: int = 64
    optimizer: str = "adam"  # adam | rmsprop
    lr_g: float = 1e-4
    lr_c: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.9
    # tracking
    track_every: int = 100
    track: tuple[str, ...] = ("w1",)  # metric-registry names, plus "batch-w1" (exact W1 of the last batches)
    track_samples: int = 64  # generated points tracked for a continuous generator
    track_data: int | None = None  # training points the tracking metrics compare against (None: all)
    patch_size: int = 8
    patch_stride: int = 4
    n_projections: int = 128
    grid_every: int = 500
    ckpt_every: int = 250
    # run
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    out: str = "runs"
    description: str = ""


PRESETS: dict[str, dict] = {
    "squares-fc": {},
    "squares-cnn-gap": {"critic": "cnn-gap", "track": ("w1", "patch-swd")},
    "squares-cnn-fc": {"critic": "cnn-fc", "track": ("w1", "patch-swd", "patch-swd-local")},
    "squares-copy": {"data": "squares:size=16:n=200", "m": 200, "steps": 2000, "track_every": 200},
    "fashion-fc": {"data": "fashion-mnist:train:n=2000:size=32", "steps": 2000},
    "fashion-conv": {"data": "fashion-mnist:train:n=2000:size=32", "generator": "conv", "critic": "cnn-fc",
                     "m": None, "track": ("w1", "patch-swd")},
    "gauss8-gp": {"data": "gauss8:n=1000", "m": None, "z_dim": 2, "g_hidden": 256, "g_depth": 3,
                  "c_hidden": 256, "c_depth": 3, "lr_c": 1e-4, "track": ("w1",), "track_samples": 1000,
                  "steps": 2000, "grid_every": 0},
    "assignment-fashion": {"data": "fashion-mnist:train:n=1000:size=32", "objective": "assignment",
                           "cost": "sqeuclidean", "m": None, "latent_noise": 0.0, "c_hidden": 512,
                           "c_depth": 3, "lr_c": 1e-4, "lr_g": 1e-4},
    "sinkhorn-fashion": {"data": "fashion-mnist:train:n=1000:size=32", "objective": "sinkhorn", "eps": 10.0,
                         "m": None, "lr_g": 1e-3},
}

#: metrics that need image data (skipped, with a note, on vector data)
_IMAGE_METRICS = {"patch-swd", "patch-swd-local"}


#: the largest batch a run may ask for: each critic step holds two batches and their activations
MAX_BATCH = 32_768
#: the most generated points tracked (a continuous generator's sample, a discrete one's M atoms): each tracking
#: step solves an exact OT problem between them and the data
MAX_TRACK_SAMPLES = 100_000
#: the most generator steps a run may ask for (about 11 days at a millisecond a step)
MAX_STEPS = 10**9
#: the widest layer (z_dim, hidden units, channels, kernel side) and the deepest stack a model may ask for
MAX_WIDTH = 65_536
MAX_DEPTH = 1_024


def _model_bytes(cfg: TrainConfig) -> tuple[float, str]:
    """A lower bound of the models' memory in bytes (float32 weights, gradients and two optimiser moments, plus
    the discrete latents; the data's dimension counted as 1) and the config sizes of its largest part."""
    parts = [((cfg.m or 0) * cfg.z_dim / 4, f"m={cfg.m} latents of z_dim={cfg.z_dim:,}"),
             (cfg.z_dim * cfg.g_hidden, f"z_dim={cfg.z_dim:,} x g_hidden={cfg.g_hidden:,}"),
             (cfg.g_hidden**2 * (cfg.g_depth - 1), f"g_depth={cfg.g_depth:,} layers of g_hidden={cfg.g_hidden:,}"),
             (16 * cfg.g_width**2, f"g_width={cfg.g_width:,}")]
    if OBJECTIVES[cfg.objective].needs_critic:
        conv = max((c * d * cfg.c_kernel**2 for c, d in itertools.pairwise(cfg.c_channels)), default=0)
        parts += [(cfg.c_hidden**2 * (cfg.c_depth - 1) + cfg.c_hidden,
                   f"c_depth={cfg.c_depth:,} layers of c_hidden={cfg.c_hidden:,}"),
                  (conv, f"c_channels={list(cfg.c_channels)} with c_kernel={cfg.c_kernel:,}")]
    return 16 * sum(n for n, _ in parts), f"the models ({max(parts)[1]})"


def validate(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` when every value is usable, else a one-line :class:`ConfigError` naming the key; the same
    checks for a real run, ``--dry-run`` and a resumed run's config, before any folder is created."""
    from wganlab.objectives import OBJECTIVES
    from wganlab.ot.costs import COSTS

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{key} must be {what}, got {getattr(cfg, key)!r}")

    for key in ("steps", "z_dim", "track_every", "track_samples", "g_hidden", "g_depth", "g_width", "c_hidden",
                "c_depth", "c_kernel", "c_stride", "patch_size", "patch_stride", "n_projections"):
        need(getattr(cfg, key) >= 1, key, ">= 1")
    for key in ("z_dim", "g_hidden", "g_width", "c_hidden", "c_kernel"):
        need(getattr(cfg, key) <= MAX_WIDTH, key, f"at most {MAX_WIDTH:,}")
    need(max(cfg.c_channels, default=1) <= MAX_WIDTH, "c_channels", f"at most {MAX_WIDTH:,} each")
    for key in ("g_depth", "c_depth"):
        need(getattr(cfg, key) <= MAX_DEPTH, key, f"at most {MAX_DEPTH:,}")
    need(cfg.steps <= MAX_STEPS, "steps", f"at most {MAX_STEPS:,}")
    need(cfg.seed >= 0, "seed", ">= 0")
    for key in ("ckpt_every", "grid_every"):
        need(getattr(cfg, key) >= 0, key, ">= 0 (0: never)")
    need(1 <= cfg.batch <= MAX_BATCH, "batch", f"between 1 and {MAX_BATCH:,}")
    need(cfg.n_projections <= MAX_PROJECTIONS, "n_projections", f"at most {MAX_PROJECTIONS:,}")
    need(cfg.track_samples <= MAX_TRACK_SAMPLES, "track_samples", f"at most {MAX_TRACK_SAMPLES:,}")
    need(cfg.m is None or 1 <= cfg.m <= MAX_TRACK_SAMPLES, "m",
         f"between 1 and {MAX_TRACK_SAMPLES:,} (the atoms are all tracked) or none (a continuous latent)")
    need(cfg.track_data is None or cfg.track_data >= 1, "track_data", ">= 1 or none (all)")
    need(cfg.threads is None or cfg.threads >= 1, "threads", ">= 1 or none")
    need(all(c >= 1 for c in cfg.c_channels) and len(cfg.c_channels) >= 1, "c_channels", "positive integers")
    for key in ("lr_g", "lr_c", "eps", "clip", "cost_scale"):
        need(math.isfinite(getattr(cfg, key)) and getattr(cfg, key) > 0, key, "a finite number > 0")
    need(math.isfinite(cfg.gp_lambda) and cfg.gp_lambda >= 0, "gp_lambda", "a finite number >= 0")
    need(math.isfinite(cfg.latent_noise) and cfg.latent_noise >= 0, "latent_noise", "a finite number >= 0")
    for key in ("beta1", "beta2"):
        need(0 <= getattr(cfg, key) < 1, key, "in [0, 1)")
    need(cfg.objective in OBJECTIVES, "objective", f"one of {', '.join(OBJECTIVES)}")
    if OBJECTIVES[cfg.objective].needs_critic:
        need(cfg.n_critic >= 1, "n_critic", f">= 1 for objective {cfg.objective!r}")
    for key in ("cost", "generator_cost"):
        need(getattr(cfg, key) in COSTS or (key == "generator_cost" and cfg.generator_cost is None), key,
             f"one of {', '.join(COSTS)}")
    need(cfg.generator in ("fc", "conv"), "generator", "fc or conv")
    need(cfg.critic in ("fc", "cnn-gap", "cnn-fc", "groupsort"), "critic", "fc, cnn-gap, cnn-fc or groupsort")
    need(cfg.lipschitz in ("bjorck", "spectral"), "lipschitz", "bjorck or spectral")
    need(cfg.optimizer in ("adam", "rmsprop"), "optimizer", "adam or rmsprop")
    need(cfg.device in ("auto", "cpu", "cuda") or (cfg.device.startswith("cuda:") and cfg.device[5:].isdigit()),
         "device", "auto, cpu, cuda or cuda:N")
    unknown = [t for t in cfg.track if t != "batch-w1" and t not in metrics.METRICS]
    if unknown:
        raise ConfigError(f"track: unknown metric(s) {', '.join(unknown)}; choose from batch-w1, "
                          f"{', '.join(metrics.METRICS)}")
    build_objective(cfg.objective, **objective_params(cfg))
    critic = OBJECTIVES[cfg.objective].needs_critic
    need(not critic or cfg.critic != "groupsort" or cfg.c_hidden % 2 == 0, "c_hidden",
         "even for the groupsort critic (GroupSort sorts pairs)")
    kind = data.parse_spec(cfg.data).info.kind
    need(cfg.generator == "fc" or kind == "image", "generator", f"fc on {kind} data (conv needs images)")
    need(cfg.critic in ("fc", "groupsort") or not critic or kind == "image", "critic",
         f"fc or groupsort on {kind} data (a CNN critic needs images)")
    resolve_device(cfg.device)
    check_memory(*_model_bytes(cfg))
    return cfg


@dataclass
class TrainResult:
    run_dir: Path
    status: str  # done | diverged
    step: int
    final: dict = field(default_factory=dict)
    generator: torch.nn.Module | None = None
    train_x: torch.Tensor | None = None


def objective_params(cfg: TrainConfig) -> dict:
    """The parameters ``cfg.objective`` declares (its ``config``: constructor argument -> config field),
    read from the flat config (none for an unknown objective, which ``build_objective`` reports)."""
    cls = OBJECTIVES.get(cfg.objective)
    return {} if cls is None else {arg: getattr(cfg, name) for arg, name in cls.config.items()}


def build_optimizer(name: str, params, lr: float, betas: tuple[float, float] = (0.5, 0.9)) -> torch.optim.Optimizer:
    """Adam (``betas``) or RMSprop at learning rate ``lr``. Adam is fused: one pass over each parameter instead
    of one per arithmetic operation (the same update up to rounding); RMSprop updates all parameters with one
    call per operation (``foreach``: the same bits as the per-parameter loop)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    raise ConfigError(f"unknown optimizer {name!r}; choose adam or rmsprop")


class Trainer:
    """The state of one run: models, optimisers, RNGs, data; :meth:`run` executes the loop."""

    def __init__(self, cfg: TrainConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir
        set_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        ds = data.load(cfg.data, cfg.data_root, seed=cfg.seed)
        self.dataset = ds
        self.x = ds.x.to(self.device)
        shape = tuple(self.x.shape[1:])
        out_act = "tanh" if ds.kind == "image" else "identity"
        self.G = build_generator(cfg.generator, shape, z_dim=cfg.z_dim, m=cfg.m, hidden=cfg.g_hidden,
                                 depth=cfg.g_depth, width=cfg.g_width, out_act=out_act,
                                 latent_noise=cfg.latent_noise, seed=cfg.seed).to(self.device)
        self.objective = build_objective(cfg.objective, **objective_params(cfg))
        self.objective.bind(self.x)
        self.D = None
        if self.objective.needs_critic:
            self.D = build_critic(cfg.critic, shape, hidden=cfg.c_hidden, depth=cfg.c_depth,
                                  channels=cfg.c_channels, kernel=cfg.c_kernel, stride=cfg.c_stride,
                                  lipschitz=cfg.lipschitz).to(self.device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = build_optimizer(cfg.optimizer, self.G.parameters(), cfg.lr_g, betas)
        self.opt_d = build_optimizer(cfg.optimizer, self.D.parameters(), cfg.lr_c, betas) if self.D else None
        self.rng_data = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.rng_latent = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)
        fixed = torch.Generator(device=self.device).manual_seed(cfg.seed + 3)
        self.grid_z = self.G.sample_latents(64, fixed)
        self.track_z = self.G.sample_latents(cfg.track_samples, fixed)
        ref = torch.Generator().manual_seed(cfg.seed + 4)
        n_ref = len(self.x) if cfg.track_data is None else min(cfg.track_data, len(self.x))
        self.ref_x = self.x[torch.randperm(len(self.x), generator=ref)[:n_ref].to(self.device)]
        self.step = 0
        self.last_batches: tuple[torch.Tensor, torch.Tensor] | None = None
        self.targets: dict[str, metrics.Target] = {}  # tracking metric -> the prepared training set

    # -- sampling -------------------------------------------------------------------------------
    def real_batch(self) -> torch.Tensor:
        idx = torch.randint(len(self.x), (self.cfg.batch,), generator=self.rng_data, device=self.device)
        return self.x[idx]

    def fake_batch(self, atoms: torch.Tensor | None = None) -> torch.Tensor:
        """A generated batch; with ``atoms`` (the generator's ``M`` outputs, :meth:`Generator.support`) the
        same latent draws pick rows of ``atoms`` instead of running the generator again."""
        if atoms is not None:
            return atoms[self.G.atom_indices(self.cfg.batch, self.rng_latent)]
        return self.G(self.G.sample_latents(self.cfg.batch, self.rng_latent))

    def generated_set(self) -> torch.Tensor:
        """The generated distribution being measured: all M atoms, or a fixed sample."""
        with torch.no_grad():
            return self.G.support() if self.G.discrete else self.G(self.track_z)

    # -- one iteration ----------------------------------------------------------------------------
    def iteration(self, diagnose: bool = True) -> dict:
        """One generator step after its ``n_critic`` critic steps: the steps' losses and statistics (the
        generator step's extra-pass statistics only with ``diagnose``; the training is the same either way)."""
        stats: dict = {}
        if self.D is not None:
            # the generator is fixed during the critic steps: a discrete one's M atoms are computed once
            atoms = None
            if self.G.atoms_reusable and self.G.m <= self.cfg.n_critic * self.cfg.batch:
                atoms = self.generated_set()
            for _ in range(self.cfg.n_critic):
                real = self.real_batch()
                with torch.no_grad():
                    fake = self.fake_batch(atoms)
                loss, s = backward(self.opt_d, self.objective.critic_loss, self.D, real, fake)
                self.opt_d.step()
                self.objective.after_critic_step(self.D)
                stats.update({f"critic_{k}": v for k, v in s.items()})
                stats["critic_loss"] = float(loss.detach())
        real, fake = self.real_batch(), self.fake_batch()
        loss, s = backward(self.opt_g, functools.partial(self.objective.generator_loss, diagnose=diagnose), self.D,
                           real, fake)
        self.opt_g.step()
        self.last_batches = (real.detach(), fake.detach())
        stats.update(s)
        stats["generator_loss"] = float(loss.detach())
        return stats

    def measure(self) -> dict:
        """Tracking metrics of the generated set against the training set."""
        cfg, out = self.cfg, {}
        gen = self.generated_set()
        options = {"patch_size": cfg.patch_size, "patch_stride": cfg.patch_stride, "n_projections": cfg.n_projections,
                   "seed": cfg.seed}
        for name in cfg.track:
            if name == "batch-w1":
                if self.last_batches is not None:
                    out[name] = metrics.compute("w1", *self.last_batches)["value"]
                continue
            if name in _IMAGE_METRICS and gen.ndim != 4:
                continue
            if name not in self.targets:  # the training set's projections are sorted once per run
                opts = {k: v for k, v in options.items() if k in metrics.get_metric(name).options}
                self.targets[name] = metrics.target(name, self.ref_x, **opts)
            out[name] = metrics.compute(name, gen, self.targets[name], **self.targets[name].options)["value"]
        return out

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "data": self.rng_data.get_state(),
               "latent": self.rng_latent.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"step": self.step, "config": to_dict(self.cfg), "generator": self.G.state_dict(),
                "critic": self.D.state_dict() if self.D else None, "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict() if self.opt_d else None, "rng": rng}

    def load_state(self, st: dict) -> None:
        try:
            self.G.load_state_dict(st["generator"])
            self.opt_g.load_state_dict(st["opt_g"])
            if self.D is not None:
                self.D.load_state_dict(st["critic"])
                self.opt_d.load_state_dict(st["opt_d"])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"{self.run_dir}: the checkpoint does not fit the run's config ({first})") from None
        self.step = int(st["step"])
        torch.set_rng_state(st["rng"]["torch"])
        self.rng_data.set_state(st["rng"]["data"])
        self.rng_latent.set_state(st["rng"]["latent"])
        if "cuda" in st["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["rng"]["cuda"], self.device)

    def save(self) -> None:
        checkpoint.save(self.run_dir / "checkpoint.pt", self.state())

    # -- the loop -------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> TrainResult:
        cfg = self.cfg
        metrics_path = self.run_dir / "metrics.jsonl"
        (self.run_dir / "grids").mkdir(exist_ok=True)
        status, t0, last = "done", time.time(), {}
        bar = tqdm(total=cfg.steps, initial=self.step, desc=self.run_dir.name,
                   disable=None if progress else True)
        if self.step > 0:  # resumed: the last row logged up to the checkpoint stands until a newer one is measured
            last = next((r for r in reversed(read_jsonl(metrics_path)) if r.get("step") == self.step), {})
        if self.step == 0 or (not last and self.step == cfg.steps):  # a new run, or a finished one whose row was lost
            last = {"step": self.step, "time": 0.0, **self.measure()}
            append_jsonl(metrics_path, last)
        while self.step < cfg.steps:
            recorded = (self.step + 1) % cfg.track_every == 0 or self.step + 1 == cfg.steps
            stats = self.iteration(diagnose=recorded)
            self.step += 1
            bar.update(1)
            if not _finite(stats) or not _finite_params(self.G, self.D):
                status = "diverged"
                append_jsonl(metrics_path, {"step": self.step, "time": time.time() - t0, "status": status,
                                            **stats})
                break
            if recorded:
                row = {"step": self.step, "time": time.time() - t0, **stats, **self.measure()}
                append_jsonl(metrics_path, row)
                last = row
                bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in cfg.track})
            if cfg.grid_every and self.x.ndim == 4 and self.step % cfg.grid_every == 0:
                self.save_grid()
            if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or self.step == cfg.steps:
                self.save()
        bar.close()
        return self.finish(status, last)

    def save_grid(self) -> None:
        with torch.no_grad():
            save_image_grid(self.G(self.grid_z).cpu(), self.run_dir / "grids" / f"step-{self.step:06d}.png")

    def finish(self, status: str, last: dict) -> TrainResult:
        if status == "diverged":  # the models hold NaN/inf: go back to the last good checkpoint
            st = checkpoint.load_latest(self.run_dir / "checkpoint.pt")
            bad_step = self.step
            if st is not None:
                self.load_state(st)
            last = {"diverged_at": bad_step, "last_good_step": self.step if st is not None else None}
            self.step = bad_step
        gen = self.generated_set()
        if gen.ndim == 4 and bool(torch.isfinite(gen).all()):
            self.save_grid()
            save_nearest_grid(gen[:32].cpu(), self.x.cpu(), self.run_dir / "nearest.png")
        final = {k: v for k, v in last.items() if k not in ("time",)}
        summary = {"status": status, "step": self.step, "final": final, "config": to_dict(self.cfg)}
        write_json(self.run_dir / "summary.json", summary)
        lines = [f"run {self.run_dir.name}: {status} after {self.step} generator steps",
                 f"data {self.dataset.spec}, objective {self.cfg.objective}, critic "
                 f"{self.cfg.critic if self.D is not None else '-'}, generator {self.cfg.generator} "
                 f"(M={self.cfg.m})"]
        lines += [f"  {k} = {v:.6g}" for k, v in final.items() if isinstance(v, float)]
        atomic_write_bytes(self.run_dir / "summary.txt", ("\n".join(lines) + "\n").encode())
        return TrainResult(self.run_dir, status, self.step, final, self.G, self.x)


def _finite(stats: dict) -> bool:
    return all(math.isfinite(v) for v in stats.values() if isinstance(v, float))


def _finite_params(*modules) -> bool:
    """Whether every parameter is finite (one device synchronisation, not one per tensor)."""
    flags = [torch.isfinite(p).all() for m in modules if m is not None for p in m.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def save_nearest_grid(gen: torch.Tensor, train_x: torch.Tensor, path: Path) -> None:
    """Each generated image next to its nearest (Euclidean) training image, pairs in rows of 8 images."""
    from wganlab.ot.costs import nearest

    closest = nearest(gen, train_x, dtype=torch.float32).indices
    pairs = torch.stack([gen, train_x[closest]], 1).reshape(-1, *gen.shape[1:])
    save_image_grid(enlarge(pairs), path, nrow=8)


def train(cfg: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Train from scratch in a new run folder under ``cfg.out``; returns the run's result. A config or
    data set that fails its checks leaves no run folder behind."""
    validate(cfg)
    description = cfg.description or f"{cfg.objective}-{cfg.critic}-{cfg.data.split(':')[0]}"
    run_dir = new_run_dir(cfg.out, description)
    with lock_run_dir(run_dir):
        try:
            write_json(run_dir / "config.json", to_dict(cfg))
            trainer = Trainer(cfg, run_dir)
        except BaseException:  # nothing ran: the folder would only hold a config
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return trainer.run(progress)


def resume(run_dir: str | Path, *, steps: int | None = None, progress: bool = True) -> TrainResult:
    """Continue a run from its last valid checkpoint (or from scratch if it never wrote one).

    Metrics logged after the checkpoint are discarded and recomputed, so the resumed run's log equals
    the uninterrupted one's. ``steps`` may extend the run.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.json)")
    check_output_folder(run_dir)
    saved = read_json(run_dir / "config.json")
    if not isinstance(saved, dict):
        raise ConfigError(f"{run_dir / 'config.json'}: expected a table of config keys")
    cfg = replace(TrainConfig(), saved)
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    validate(cfg)
    ckpts = [run_dir / "checkpoint.pt", run_dir / "checkpoint.pt.prev"]
    for path in ckpts:
        if path.exists() and not path.is_file():
            raise InputError(f"{path}: not a file (a checkpoint is a file; move it away to restart the run)")
    with lock_run_dir(run_dir):
        trainer = Trainer(cfg, run_dir)
        st = checkpoint.load_latest(ckpts[0])
        if not any(path.exists() for path in ckpts):
            print(f"wganlab: no checkpoint in {run_dir}; the run restarts from step 0", file=sys.stderr)
        if st is not None:
            at = st.get("step")
            if not isinstance(at, int) or not 0 <= at <= cfg.steps:
                raise ConfigError(f"{run_dir}: the checkpoint is at step {at!r}, outside the run's 0..{cfg.steps} "
                                  f"steps (a stale or forged checkpoint)")
            trainer.load_state(st)
        truncate_jsonl(run_dir / "metrics.jsonl", lambda r: 0 < trainer.step and r.get("step", 0) <= trainer.step)
        return trainer.run(progress)
