"""Generators (discrete or continuous latents; FC or DCGAN-style bodies) and critics (FC, CNN-GAP,
CNN-FC, 1-Lipschitz GroupSort). Nothing here knows about training."""

from wganlab.models.critics import (
    CNNCritic,
    FCCritic,
    GroupSortCritic,
    build_critic,
    patch_stride,
    receptive_field,
)
from wganlab.models.generators import ConvBody, FCBody, Generator, build_generator

__all__ = [
    "CNNCritic",
    "ConvBody",
    "FCBody",
    "FCCritic",
    "Generator",
    "GroupSortCritic",
    "build_critic",
    "build_generator",
    "patch_stride",
    "receptive_field",
]
