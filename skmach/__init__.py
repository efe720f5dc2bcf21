"""skmach: hashing-based extreme classification for scikit-learn."""

from ._version import __version__

__all__ = ["__version__"]
