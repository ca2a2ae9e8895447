"""A program with every argument resolved to where its value comes from.

Built by ``dsl._analysis.resolve``; read by the liveness pass there and by the
functional hash (``dsl._hash``), which is why it lives in neither of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._types import Kind


@dataclass(frozen=True)
class Resolved:
    """A program with every argument resolved to where its value comes from.

    Attributes:
      refs: per statement, its arguments as references (statement index >= 0, input
        < 0, or a float constant; see ``dsl._refs``).
      update_ref: where the returned update comes from.
      slot_refs: per state slot, where its returned (next-step) value comes from.
      kinds: per statement, its result kind, or None for the first statement that
        does not type-check (and every later one).
      well_typed: whether every statement and every returned value type-checks.
    """

    refs: tuple[tuple[int | float, ...], ...]
    update_ref: int
    slot_refs: tuple[int, ...]
    kinds: tuple[Kind | None, ...]
    well_typed: bool
