"""Every figure and table of the papers as a named experiment (see ``wganlab list``).

Importing this package registers all experiments in :data:`EXPERIMENTS`.
"""

from wganlab.experiments import (  # noqa: F401  (importing registers, in the catalogue's order)
    blur_vs_real,
    otmeans_vs_wgan,
    critic_architecture,
    multiscale_patch,
    oracle_estimate,
    gmm8_tracking,
    batch_estimate,
    sample_complexity,
    mean_vs_real,
    sinkhorn_generator,
    lipschitz_critics,
    assignment,
    estimator_error,
)
from wganlab.experiments.base import EXPERIMENTS, Claim, Context, Experiment, Verdict, get_experiment, register

__all__ = ["EXPERIMENTS", "Claim", "Context", "Experiment", "Verdict", "get_experiment", "register"]
