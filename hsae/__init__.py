"""hsae: hierarchical (cascaded) sparse autoencoders, as an N-level toolkit.

``hsae.load(run_dir)`` reads a finished run back as a model on raw activations
(:class:`hsae.trained.TrainedHierarchy`, docs/api.md).
"""

from hsae.version import __version__

__all__ = ["__version__", "load"]


def load(run_dir):
    """The trained model of a finished run directory (``hsae.trained.load``; docs/api.md)."""
    from hsae.trained import load as _load  # torch and the model code load on first use

    return _load(run_dir)
