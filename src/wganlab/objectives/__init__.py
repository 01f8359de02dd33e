"""GAN objectives, one file per family, each an object with a critic phase and a generator phase
(see :mod:`wganlab.objectives.base`)."""

from __future__ import annotations

from wganlab.errors import ConfigError
from wganlab.objectives.assignment import Assignment, SmoothAssignment, assignment_stats
from wganlab.objectives.base import Objective, backward, gradient_norms, interpolates, lipschitz_stats
from wganlab.objectives.ctransform import CTransform, EntropicCTransform
from wganlab.objectives.nsgan import NonSaturating
from wganlab.objectives.sinkhorn import SinkhornGenerator
from wganlab.objectives.wgan import GradientPenalty, WeightClipping

OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (WeightClipping, GradientPenalty, CTransform, EntropicCTransform, NonSaturating,
                SinkhornGenerator, Assignment, SmoothAssignment)
}


def build_objective(name: str, **params) -> Objective:
    """An objective by name (``wgan-wc``, ``wgan-gp``, ``ctransform``, ``ceps-transform``, ``nsgan``,
    ``sinkhorn``, ``assignment``, ``assignment-lse``) with its parameters."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    try:
        return OBJECTIVES[name](**params)
    except TypeError as e:
        raise ConfigError(f"objective {name!r}: {e}") from None


__all__ = [
    "OBJECTIVES",
    "Assignment",
    "CTransform",
    "EntropicCTransform",
    "GradientPenalty",
    "NonSaturating",
    "Objective",
    "SinkhornGenerator",
    "SmoothAssignment",
    "WeightClipping",
    "assignment_stats",
    "backward",
    "build_objective",
    "gradient_norms",
    "interpolates",
    "lipschitz_stats",
]
