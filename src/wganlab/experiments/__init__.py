"""Every figure and table of the papers as a named experiment (see ``wganlab list``).

:data:`CATALOGUE` is the one list of the experiments, in the order ``wganlab list``, ``reproduce`` and the
report show them: importing this package imports each module in that order, and each module registers its
experiment in :data:`EXPERIMENTS`.
"""

import importlib

from wganlab.experiments.base import EXPERIMENTS, Claim, Context, Experiment, Verdict, get_experiment, register

#: the experiment modules, in catalogue order (each registers one experiment)
_MODULES = ("blur_vs_real", "otmeans_vs_wgan", "critic_architecture", "multiscale_patch", "oracle_estimate",
            "gmm8_tracking", "batch_estimate", "sample_complexity", "mean_vs_real", "sinkhorn_generator",
            "lipschitz_critics", "assignment", "estimator_error")
for _module in _MODULES:
    importlib.import_module(f"wganlab.experiments.{_module}")

#: the experiments' names in catalogue order
CATALOGUE = tuple(EXPERIMENTS)

__all__ = ["CATALOGUE", "EXPERIMENTS", "Claim", "Context", "Experiment", "Verdict", "get_experiment", "register"]
