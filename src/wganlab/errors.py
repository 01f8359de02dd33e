"""User-facing errors, in two families that the CLI tells apart.

* :class:`BadInput` (exit status 2): the user asked for something unusable — an array, option, dataset or
  config value. Fix the input and rerun.
* :class:`ComputationFailed` (exit status 3): the input was fine but a computation could not deliver a
  trustworthy answer — an exact solver that cannot certify optimality, a training run that diverged, a
  Sinkhorn iteration that did not converge. The result is withheld rather than returned wrong.

Each message names the problem in one line; the CLI prints it as ``wganlab: error: ...``.
"""


class WganlabError(ValueError):
    """Base class of every error that wganlab raises on purpose (a ``ValueError`` for older callers)."""


class BadInput(WganlabError):
    """Base class of the errors caused by the caller's input (CLI exit status 2)."""


class ComputationFailed(WganlabError):
    """Base class of the errors of a computation that could not give a trustworthy answer (exit status 3)."""


class InputError(BadInput):
    """An array, weight vector or option is unusable (shape, dtype, NaN/inf, empty, bad value, absurd size)."""


class DatasetError(BadInput):
    """A dataset spec is unknown or malformed, or its files are missing or corrupt."""


class ConfigError(BadInput):
    """A configuration key is unknown or a value has the wrong type or range."""


class TrainingDiverged(ComputationFailed):
    """A training run's loss or weights became NaN/inf; its last good checkpoint is kept."""


class NotOptimalError(ComputationFailed):
    """An exact OT solver could not certify an optimal solution."""
