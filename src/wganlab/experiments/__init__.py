"""Every figure and table of the papers as a named experiment (see ``wganlab list``).

Importing this package registers all experiments in :data:`EXPERIMENTS`.
"""

from wganlab.experiments import mean_vs_real, sample_complexity  # noqa: F401  (registration)
from wganlab.experiments.base import EXPERIMENTS, Claim, Context, Experiment, Verdict, get_experiment, register

__all__ = ["EXPERIMENTS", "Claim", "Context", "Experiment", "Verdict", "get_experiment", "register"]
