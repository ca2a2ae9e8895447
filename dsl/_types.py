"""The three kinds of value a DSL variable can hold."""

from __future__ import annotations

import enum
import functools


@functools.total_ordering
class Kind(enum.Enum):
    """What a value is, independent of the parameter shapes.

    Ordered by broadcasting: combining two kinds elementwise gives the larger one
    (a scalar broadcasts over everything, a per-array scalar over its own array).
    """

    SCALAR = "scalar"
    PER_ARRAY = "tree of per-array scalars"
    TREE = "tree"

    def __lt__(self, other: Kind) -> bool:
        return _ORDER[self] < _ORDER[other]


_ORDER = {Kind.SCALAR: 0, Kind.PER_ARRAY: 1, Kind.TREE: 2}
