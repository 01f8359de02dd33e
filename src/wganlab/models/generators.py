"""Generators: a body network fed by either a continuous Gaussian latent or a *discrete* latent table.

Discrete generator (Elnekave & Weiss, section 2): ``M`` latent vectors ``z_1..z_M ~ N(0, I)`` are drawn
once (seeded) and kept fixed (a buffer, not learned); a sample picks ``i`` uniformly and returns
``G(z_i)``, so the generated distribution has at most ``M`` atoms and its exact W1 to a training set is
computable. ``latent_noise > 0`` adds ``N(0, s^2 I)`` to the chosen latent (the Gaussian-mixture latent
of Laschos et al.: 10,000 centres, sigma 0.1). ``M=None`` gives the usual continuous generator.

Bodies map ``z (B, z_dim)`` to ``(B, *out_shape)``; the output activation matches the data's range
(``tanh`` for images in [-1, 1], identity for unbounded vectors).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wganlab.errors import ConfigError

ACTIVATIONS = {"tanh": nn.Tanh, "identity": nn.Identity}


def _out_act(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown output activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class FCBody(nn.Module):
    """``Linear(z_dim, hidden) -> LeakyReLU(0.2) -> ... -> Linear(hidden, prod(out_shape)) -> act``.

    The papers' FC generator has one hidden layer of 128 units (``depth=1``, ``hidden=128``).
    """

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], hidden: int = 128, depth: int = 1,
                 out_act: str = "tanh"):
        super().__init__()
        layers: list[nn.Module] = []
        width = z_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers += [nn.Linear(width, math.prod(out_shape)), _out_act(out_act)]
        self.net = nn.Sequential(*layers)
        self.out_shape = tuple(out_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(len(z), *self.out_shape)


class ConvBody(nn.Module):
    """DCGAN-style body for square images of side ``s0 * 2^k`` (``3 <= s0 <= 7``: 8, 16, 28, 32, 64, ...).

    ``z -> Linear -> (width * 2^k, s0, s0) -> k x [ConvTranspose(4, stride 2, pad 1) -> (BatchNorm) -> ReLU,
    halving the channels] -> Conv(3x3, C) -> act``. BatchNorm is off by default so that a discrete
    generator's outputs never depend on the rest of its batch (our choice).
    """

    def __init__(self, z_dim: int, out_shape: tuple[int, int, int], width: int = 64, batchnorm: bool = False,
                 out_act: str = "tanh"):
        super().__init__()
        c, h, w = out_shape
        k, s0 = 0, h
        while s0 > 7 and s0 % 2 == 0:
            s0, k = s0 // 2, k + 1
        if h != w or not 3 <= s0 <= 7:
            raise ConfigError(f"conv generator needs square images of side s0 * 2^k with 3 <= s0 <= 7, "
                              f"got {h}x{w}")
        ch = width * 2**k
        self.fc = nn.Sequential(nn.Linear(z_dim, ch * s0 * s0), nn.ReLU())
        blocks: list[nn.Module] = []
        for _ in range(k):
            blocks.append(nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1))
            if batchnorm:
                blocks.append(nn.BatchNorm2d(ch // 2))
            blocks.append(nn.ReLU())
            ch //= 2
        blocks += [nn.Conv2d(ch, c, 3, 1, 1), _out_act(out_act)]
        self.net = nn.Sequential(*blocks)
        self.start = (ch * 2**k, s0)
        self.out_shape = tuple(out_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        ch, s0 = self.start
        return self.net(self.fc(z).reshape(len(z), ch, s0, s0))


class Generator(nn.Module):
    """``x = body(z)`` with a discrete (``m`` fixed latents) or continuous Gaussian latent."""

    def __init__(self, body: nn.Module, z_dim: int, m: int | None = None, latent_noise: float = 0.0,
                 seed: int = 0):
        super().__init__()
        if m is not None and m < 1:
            raise ConfigError(f"number of discrete latents m must be >= 1, got {m}")
        self.body, self.z_dim, self.m, self.latent_noise = body, z_dim, m, latent_noise
        if m is not None:
            g = torch.Generator().manual_seed(seed)
            self.register_buffer("latents", torch.randn(m, z_dim, generator=g))

    @property
    def discrete(self) -> bool:
        return self.m is not None

    @property
    def atoms_reusable(self) -> bool:
        """Whether a sample equals rows of :meth:`support` exactly: a discrete generator without latent noise
        or batch normalisation (each output depends on its own latent only)."""
        return (self.discrete and not self.latent_noise
                and not any(isinstance(mod, nn.BatchNorm2d) for mod in self.modules()))

    def atom_indices(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n,)`` uniform picks among the ``M`` latents (the draws :meth:`sample_latents` makes), drawn on
        ``generator``'s device (a seeded CPU generator picks the same on any device) and returned on the
        latents' device."""
        at = self.latents.device if generator is None else generator.device
        return torch.randint(self.m, (n,), generator=generator, device=at).to(self.latents.device)

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, z_dim)`` latents on the model's device: uniform picks from the table (discrete) or
        ``N(0, I)`` draws, drawn on ``generator``'s device."""
        dev = next(self.parameters()).device
        at = dev if generator is None else generator.device
        if not self.discrete:
            return torch.randn(n, self.z_dim, generator=generator, device=at).to(dev)
        z = self.latents[self.atom_indices(n, generator)]
        if self.latent_noise:
            z = z + self.latent_noise * torch.randn(n, self.z_dim, generator=generator, device=at).to(dev)
        return z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self(self.sample_latents(n, generator))

    def support(self, batch: int = 1024) -> torch.Tensor:
        """All ``M`` atoms ``G(z_1..z_M)`` of a discrete generator (noise-free latents), ``(M, ...)``."""
        if not self.discrete:
            raise ConfigError("a continuous generator has no finite support; sample from it instead")
        return torch.cat([self(self.latents[i:i + batch]) for i in range(0, self.m, batch)])


def build_generator(body: str, out_shape: tuple[int, ...], *, z_dim: int = 64, m: int | None = 64,
                    hidden: int = 128, depth: int = 1, width: int = 64, batchnorm: bool = False,
                    out_act: str = "tanh", latent_noise: float = 0.0, seed: int = 0) -> Generator:
    """A generator with body ``"fc"`` or ``"conv"`` producing ``out_shape`` points.

    Defaults follow Elnekave & Weiss: 64-d latent, M = 64 fixed latents, FC body with one hidden
    layer of 128 units (LeakyReLU 0.2), tanh output.
    """
    if body == "fc":
        net: nn.Module = FCBody(z_dim, out_shape, hidden, depth, out_act)
    elif body == "conv":
        if len(out_shape) != 3:
            raise ConfigError(f"conv generator needs image data (C, H, W), got points of shape {out_shape}")
        net = ConvBody(z_dim, out_shape, width, batchnorm, out_act)
    else:
        raise ConfigError(f"unknown generator body {body!r}; choose 'fc' or 'conv'")
    return Generator(net, z_dim, m, latent_noise, seed)
