"""The errors genzoo raises. Each names the field, the value and what is allowed."""


class GenzooError(Exception):
    """Base class of every error genzoo raises on purpose (the CLI prints these as one line)."""


class ConfigError(GenzooError, ValueError):
    """An invalid config field, unknown preset or unknown registered name."""


class InputError(GenzooError, ValueError):
    """Bad model input: token id out of range, sequence too long, mask of the wrong shape."""


class CheckpointError(GenzooError):
    """A checkpoint that cannot be read safely or does not match the model; names the file and keys."""


class RunDirError(GenzooError):
    """A run directory that cannot be used: not a genzoo run, in use by another run, or a refused resume."""


class GenzooWarning(UserWarning):
    """Something genzoo did on the user's behalf that they should know about (the CLI prints it as one line)."""
