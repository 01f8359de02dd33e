"""User-facing errors. Each message names the problem in one line; the CLI prints it and exits 2."""


class WganlabError(ValueError):
    """Base class of every error that wganlab raises on bad input."""


class InputError(WganlabError):
    """An array, weight vector or option is unusable (shape, dtype, NaN/inf, empty, bad value)."""


class DatasetError(WganlabError):
    """A dataset spec is unknown or malformed, or its files are missing or corrupt."""


class ConfigError(WganlabError):
    """A configuration key is unknown or a value has the wrong type."""


class TrainingDiverged(WganlabError):
    """A training run's loss or weights became NaN/inf; its last good checkpoint is kept."""


class NotOptimalError(WganlabError):
    """An exact OT solver could not certify an optimal solution."""
