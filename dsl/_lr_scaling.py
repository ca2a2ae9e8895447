"""Whether a program's update is proportional to the learning-rate schedule ``lr``.

In the paper's setup (arXiv:2302.06675, section 2.1) ``lr`` is the value of a fixed
schedule (cosine decay) and the program scales it by a constant, as every optimizer in
the library does: ``update = direction * lr`` with a direction that does not depend on
``lr``. A search may otherwise gain by replacing the schedule with a constant, which
changes the schedule rather than the update rule; a search that asks for this property
(``search.update_scales_with_lr``) competes on the update rule alone.
"""

from __future__ import annotations

import numpy as np

from ._analysis import Analysis
from ._fingerprint import flat_probe_updates
from ._program import Program

LR_SCALE = 0.5
"""The probe is run at its own ``lr`` and at this multiple of it."""
RELATIVE_TOLERANCE = 1e-9
"""float64 rounding of ``x * lr`` against ``x * (0.5 * lr)``: exact up to a few ulps."""


def update_scales_with_lr(program: Program | str | Analysis) -> bool:
    """True when halving ``lr`` halves every update on the fingerprint probe.

    The probe's weights are fixed per step (they do not follow the updates), so an
    update ``direction * lr`` is exactly proportional; an update that ignores ``lr``, reads
    it through a nonlinear function (``sign(lr)``, ``sqrt(lr)``), adds it, or lets it reach
    a state slot is not. Non-finite updates must be non-finite in both runs, and at least
    one update must be finite and non-zero.

    Raises:
      ProgramError: if the program is not valid.
    """
    full = flat_probe_updates(program)
    scaled = flat_probe_updates(program, LR_SCALE)
    finite = np.isfinite(full)
    if not np.array_equal(finite, np.isfinite(scaled)) or not np.any(full[finite] != 0.0):
        return False
    expected = LR_SCALE * full[finite]
    return bool(np.all(np.abs(scaled[finite] - expected) <= RELATIVE_TOLERANCE * np.abs(expected)))
