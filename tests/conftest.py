"""Strict JAX configuration for the whole test suite (as in equinox).

Implicit rank promotion raises, so a silent broadcast of a (3,) array against a (2, 3)
one fails loudly; 0-d scalars still broadcast, which is how the DSL broadcasts scalars
and per-array norms. Dtype promotion stays at "standard": under "strict" a bfloat16
parameter combined with the float32 schedule value ``lr`` (or ``step``) has no implicit
promotion path, so every library program fails on bfloat16 parameters, although the
executor casts results back to the parameter dtype as intended.
"""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "standard")
