"""References: where a resolved argument's value comes from (``dsl._analysis.resolve``).

A reference is a statement's index (>= 0), an input (the negative ints below), or the
float constant itself.
"""

W, G, LR, STEP = -1, -2, -3, -4
INPUTS = {"w": W, "g": G, "lr": LR, "step": STEP}
"""Input name -> reference."""

FIRST_SLOT = -5
"""State slot ``i`` is referenced as ``FIRST_SLOT - i``."""
