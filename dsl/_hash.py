"""Functional hash: how the update and the live state transitions are computed.

Every value gets a 16-byte BLAKE2b digest of its computation, bottom-up over the live
statements only:

* an input by position: ``w``, ``g``, ``lr``, ``step``, and a live state slot by its
  place in a canonical order of the live slots (so renaming or reordering slots does
  not change the hash); unused slots do not appear at all;
* a constant by the exact bits of its float (``float.hex``), so 0.9 and 0.90000001
  differ;
* a call by its function and its arguments' digests, sorted for the commutative
  functions (``add multiply max min dot cosine_sim``).

The program's hash covers the update *and* every live slot's returned value, in terms
of the incoming values: two programs with equal hashes take the same zero state to the
same updates and states at every step.

Exact identities are folded (and only those): ``x * 1``, ``1 * x``, ``x + 0``,
``0 + x``, ``x - 0``, ``negative(negative(x))``, ``x * -1 -> negative(x)``,
``x - y -> x + negative(y)``, ``max(x, x)`` and ``min(x, x) -> x``. ``x / 1`` is not
folded (the DSL adds 1e-8 to denominators). ``x + 0`` turns ``-0.0`` into ``+0.0``;
that is the one folded rule exact only up to the sign of zero.

Exact means bit-identical in JAX execution, whatever the parameters' float dtype. A
value computed only from literal constants by ``+ - * / interp`` stays a Python float
there (float64 arithmetic), whereas every other function returns a float32 array; so
no rule swaps one for the other (``negative(negative(0.3))`` is not ``0.3``), and
``x - y`` is rewritten only when ``y`` is an array: ``negative(0.3)`` is a float32
array, and rounding it again to a bfloat16 parameter can differ from rounding 0.3 once.

Live slots are ordered canonically by the digest of their transition with all slots
anonymous; ties are broken by trying every order of the tied slots and keeping the
smallest hash (at most 4 slots).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from typing import TYPE_CHECKING

from ._ops import OPS
from ._program import MAX_STATE_SLOTS
from ._refs import FIRST_SLOT, INPUTS
from ._resolved import Resolved

if TYPE_CHECKING:
    from ._program import Program

_DIGEST_SIZE = 16
_blake = hashlib.blake2b


def _leaf(label: str) -> bytes:
    return _blake(label.encode(), digest_size=_DIGEST_SIZE).digest()


_INPUT_DIGESTS = {ref: _leaf(f"input:{name}") for name, ref in INPUTS.items()}
_ANONYMOUS_SLOT = _leaf("state:anonymous")
_SLOT_DIGESTS = tuple(_leaf(f"state:{i}") for i in range(MAX_STATE_SLOTS))

_OP_PREFIX = {name: f"{name}:".encode() for name in OPS}
_COMMUTATIVE = frozenset(name for name, op in OPS.items() if op.commutative)
# Functions whose JAX kernel keeps Python floats as Python floats (plain arithmetic).
_PYTHON_ARITHMETIC = frozenset({"add", "subtract", "multiply", "divide", "interp"})


@functools.lru_cache(maxsize=1 << 14)
def _constant(value: float) -> bytes:
    return _blake(b"const:" + value.hex().encode(), digest_size=_DIGEST_SIZE).digest()


def _node(op: str, children) -> bytes:
    return _blake(_OP_PREFIX[op] + b"".join(children), digest_size=_DIGEST_SIZE).digest()


def _statement_digests(program: Program, resolved: Resolved, live, slot_digest: dict[int, bytes]):
    """Digests of the live statements (None for redundant ones)."""
    statements = program.statements
    refs = resolved.refs
    digests: list[bytes | None] = [None] * len(refs)
    python_float = [False] * len(refs)
    negation_of: dict[bytes, bytes] = {}  # digest of negative(x) -> digest of x (x an array)

    def negate(digest: bytes, is_python_float: bool) -> bytes:
        inner = negation_of.get(digest)
        if inner is not None:
            return inner
        result = _node("negative", (digest,))
        if not is_python_float:
            negation_of[result] = digest
        return result

    for index, arg_refs in enumerate(refs):
        if not live[index]:
            continue
        op = statements[index].op
        children = []
        floats = []
        for ref in arg_refs:
            if type(ref) is float:
                children.append(_constant(ref))
                floats.append(True)
            elif ref >= 0:
                children.append(digests[ref])
                floats.append(python_float[ref])
            elif ref > FIRST_SLOT:
                children.append(_INPUT_DIGESTS[ref])
                floats.append(False)
            else:
                children.append(slot_digest[ref])
                floats.append(False)
        is_python_float = op in _PYTHON_ARITHMETIC and all(floats)
        python_float[index] = is_python_float
        digest = None
        if op == "multiply":
            a, b = arg_refs
            if type(b) is float and b == 1.0:
                digest = children[0]
            elif type(a) is float and a == 1.0:
                digest = children[1]
            elif type(b) is float and b == -1.0 and not floats[0]:
                digest = negate(children[0], False)
            elif type(a) is float and a == -1.0 and not floats[1]:
                digest = negate(children[1], False)
        elif op == "add":
            a, b = arg_refs
            if type(b) is float and b == 0.0:
                digest = children[0]
            elif type(a) is float and a == 0.0:
                digest = children[1]
        elif op == "subtract":
            b = arg_refs[1]
            if type(b) is float and b == 0.0:
                digest = children[0]
            elif not floats[1]:
                op = "add"
                children = [children[0], negate(children[1], False)]
        elif op == "negative":
            if not floats[0]:
                digest = negation_of.get(children[0])
            if digest is None:
                digest = negate(children[0], floats[0])
        elif op == "max" or op == "min":
            if children[0] == children[1] and not floats[0]:
                digest = children[0]
        if digest is None:
            if op in _COMMUTATIVE:
                children.sort()
            digest = _node(op, children)
        digests[index] = digest
    return digests


def _ref_digest(ref: int, digests, slot_digest: dict[int, bytes]) -> bytes:
    if ref >= 0:
        return digests[ref]
    if ref > FIRST_SLOT:
        return _INPUT_DIGESTS[ref]
    return slot_digest[ref]


def functional_hash_of_resolved(program: Program, resolved: Resolved, live, live_slot) -> str:
    """The hex functional hash of a resolved, type-checked program (see module doc)."""
    slot_refs = resolved.slot_refs
    live_slots = [i for i, flag in enumerate(live_slot) if flag]

    def hash_with_order(order) -> bytes:
        slot_digest = {FIRST_SLOT - slot: _SLOT_DIGESTS[position] for position, slot in enumerate(order)}
        digests = _statement_digests(program, resolved, live, slot_digest)
        parts = [b"update", _ref_digest(resolved.update_ref, digests, slot_digest)]
        for slot in order:
            parts += [b"slot", _ref_digest(slot_refs[slot], digests, slot_digest)]
        return _blake(b"".join(parts), digest_size=_DIGEST_SIZE).digest()

    if len(live_slots) <= 1:
        return hash_with_order(live_slots).hex()
    anonymous = {FIRST_SLOT - slot: _ANONYMOUS_SLOT for slot in live_slots}
    digests = _statement_digests(program, resolved, live, anonymous)
    color = {slot: _ref_digest(slot_refs[slot], digests, anonymous) for slot in live_slots}
    live_slots.sort(key=color.__getitem__)
    groups = [list(group) for _, group in itertools.groupby(live_slots, key=color.__getitem__)]
    best = None
    for choice in itertools.product(*(itertools.permutations(group) for group in groups)):
        candidate = hash_with_order([slot for group in choice for slot in group])
        if best is None or candidate < best:
            best = candidate
    return best.hex()
