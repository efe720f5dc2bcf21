"""All hashing of the package lives here.

- :mod:`._universal`: 2-universal hash functions of label indices into buckets
  (MACH's repetitions).
- :mod:`._lsh`: locality-sensitive hash families (SimHash, densified WTA) and
  hash tables over neuron weight vectors (LSH-sparse training).
"""

from ._universal import PermutationFamily, UniversalHashFamily

__all__ = ["UniversalHashFamily", "PermutationFamily"]
from ._lsh import DWTAHash, LSHTables, SimHash, make_hash_family  # noqa: E402

__all__ += ["SimHash", "DWTAHash", "LSHTables", "make_hash_family"]
