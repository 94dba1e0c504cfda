"""Error types raised by nbviz.

Every error says what is wrong *and* how to fix it. They subclass the built-in type a
user would naturally catch (``ValueError``, ``KeyError``-like lookups are ``ValueError`` so
that the message prints unquoted, ``ImportError`` for missing backends).
"""

from __future__ import annotations


class NbvizError(Exception):
    """Base class of all nbviz errors."""


class BackendMissingError(NbvizError, ImportError):
    """No TensorFlow installation was found."""


class LayerError(NbvizError, ValueError):
    """A layer name or type cannot be used for the requested operation."""


class ChannelError(NbvizError, ValueError):
    """A channel index (a conv filter, a Dense neuron, a class logit) is out of range."""


class ImageError(NbvizError, ValueError):
    """An input image has the wrong rank, channel count or dtype."""


class ModelError(NbvizError, ValueError):
    """The model cannot be used as given (undefined input shape, several inputs, no loss...)."""


class DataError(NbvizError, ValueError):
    """Data does not fit the model (shape, dtype, NaN/inf)."""


class WeightsUnavailableError(NbvizError, FileNotFoundError):
    """Pretrained weights are not available locally and cannot be downloaded."""


class PathError(NbvizError, ValueError):
    """A training path does not match the model (shapes, lengths) or is empty."""


class SurfaceFileError(NbvizError, ValueError):
    """A surface file is corrupted, foreign, or belongs to another model/grid."""


class DistributedError(NbvizError, RuntimeError):
    """Remote workers failed a task more often than allowed, or the executor is unusable."""


class NbvizWarning(UserWarning):
    """Base class of nbviz warnings: the result is computed under an assumption the message
    names, with the fix that makes it explicit (and silences the warning)."""


class ImageRangeWarning(NbvizWarning):
    """An image's values were read under a guessed range (e.g. floats holding 0..255)."""


class StaleOriginWarning(NbvizWarning):
    """Directions were made from weights the model no longer has (it trained on since)."""


class CostWarning(NbvizWarning):
    """A request will take far more time or memory than it needs to."""


def closest_names(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look like ``name`` (for "did you mean" hints)."""
    import difflib

    return difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)


def format_choices(candidates: list[str], limit: int = 40) -> str:
    """Format a list of valid choices for an error message, truncated politely."""
    shown = ", ".join(repr(c) for c in candidates[:limit])
    if len(candidates) > limit:
        shown += f", ... ({len(candidates) - limit} more)"
    return shown


def __getattr__(name: str) -> type:
    if name == "UnitError":  # the old name of ChannelError (one word per concept: "channel")
        from .deprecation import warn_renamed

        warn_renamed("nbviz.errors.UnitError", "nbviz.errors.ChannelError")
        return ChannelError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
