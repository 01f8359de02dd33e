"""Every figure and table of the papers as a named experiment (see ``wganlab list``).

Importing this package registers all experiments in :data:`EXPERIMENTS`, in the catalogue's order.
"""

from wganlab.experiments import (  # noqa: F401  (importing a module registers its experiment)
    assignment,
    batch_estimate,
    blur_vs_real,
    critic_architecture,
    estimator_error,
    gmm8_tracking,
    lipschitz_critics,
    mean_vs_real,
    multiscale_patch,
    oracle_estimate,
    otmeans_vs_wgan,
    sample_complexity,
    sinkhorn_generator,
)
from wganlab.experiments.base import EXPERIMENTS, Claim, Context, Experiment, Verdict, get_experiment, register

CATALOGUE = ("blur-vs-real", "otmeans-vs-fc-wgan", "critic-architecture", "multiscale-patch", "oracle-estimate",
             "gmm8-tracking", "batch-estimate", "sample-complexity", "mean-vs-real-dimension", "sinkhorn-generator",
             "lipschitz-critics", "assignment", "estimator-error")
_registered = dict(EXPERIMENTS)
EXPERIMENTS.clear()
EXPERIMENTS.update({**{name: _registered[name] for name in CATALOGUE}, **_registered})

__all__ = ["CATALOGUE", "EXPERIMENTS", "Claim", "Context", "Experiment", "Verdict", "get_experiment", "register"]
