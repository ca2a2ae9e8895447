"""Export a program as one self-contained Python module: an optax optimizer needing only jax and optax.

The functions the program calls are not rewritten by hand: their kernels are copied as
text from the op registry's source (``dsl/_ops.py``), with the helpers they use (the
safe-division epsilon, global norms, the lift over arrays), so the exported formulas and
out-of-domain rules are the DSL's own. Each copied kernel is checked against the live
registry entry when the module is generated.
"""

from __future__ import annotations

import ast
import functools
import inspect
import keyword
import textwrap
import types

from . import _ops
from ._ops import OPS
from ._program import Program


@functools.cache
def _registry_source() -> tuple[str, dict[str, str]]:
    """``_ops.py``'s source and, per op, the source text of its kernel argument."""
    source = inspect.getsource(_ops)
    kernels: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id == "Op" and len(node.args) >= 5 and isinstance(node.args[0], ast.Constant):
            kernels[node.args[0].value] = ast.get_source_segment(source, node.args[4])
    for node in ast.walk(ast.parse(source)):  # the unary table: {"name": _unary(doc, kernel)}
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Name)
                    and value.func.id == "_unary"
                ):
                    kernels[key.value] = ast.get_source_segment(source, value.args[1])
    missing = set(OPS) - set(kernels)
    if missing:
        raise RuntimeError(f"no kernel text found in dsl/_ops.py for {sorted(missing)}")
    for name, text in kernels.items():
        _check_same_kernel(name, text)
    return source, kernels


def _check_same_kernel(name: str, text: str) -> None:
    """The text, evaluated in the registry's module, is the registered kernel."""
    copied, registered = eval(text, vars(_ops)), OPS[name].kernel  # noqa: S307 (our own source)

    def code(c: types.CodeType) -> tuple:  # bytecode and constants, not line numbers
        consts = tuple(code(k) if isinstance(k, types.CodeType) else k for k in c.co_consts)
        return c.co_code, consts, c.co_names

    def fingerprint(fn):
        cells = tuple(c.cell_contents for c in (fn.__closure__ or ()))
        return code(fn.__code__), cells

    if fingerprint(copied) != fingerprint(registered):
        raise RuntimeError(f"the kernel text of {name!r} in dsl/_ops.py does not match the registry")


def _dependencies(text: str) -> list[str]:
    """Module-level names of ``_ops`` that ``text`` uses, transitively, dependencies first."""
    order: list[str] = []

    def visit(code: str):
        for node in ast.walk(ast.parse(textwrap.dedent(code))):
            if isinstance(node, ast.Name) and node.id in vars(_ops) and node.id not in order:
                value = vars(_ops)[node.id]
                if isinstance(value, types.FunctionType):
                    visit(inspect.getsource(value))
                order.append(node.id)

    visit(text)
    return order


def _definition(name: str) -> str:
    value = vars(_ops)[name]
    if isinstance(value, types.FunctionType):
        return inspect.getsource(value).rstrip() + "\n"
    if isinstance(value, types.ModuleType):
        return ""  # imported at the top
    return f"{name} = {value!r}\n"


def _safe_names(program: Program) -> dict[str, str]:
    """Program variable -> Python local name: a keyword or an ``op_*`` name gets a ``v_`` prefix."""
    names = {*program.inputs, *(s.target for s in program.statements)}
    renamed = {}
    for name in sorted(names):
        new = name
        if keyword.iskeyword(name) or name.startswith("op_"):
            new = f"v_{name}"
            while new in names or new in renamed.values():
                new += "_"
        renamed[name] = new
    return renamed


def export_module(program: Program, name: str = "optimizer") -> str:
    """One Python module defining ``program`` as an optax optimizer, needing only jax and optax.

    The module's ``optimizer(learning_rate=1.0)`` returns an ``optax.GradientTransformation``
    equal to ``dsl.to_optax(program, schedule)``: ``learning_rate`` (a float or an optax
    schedule of the step count) feeds the program's ``lr`` input; the program's own
    constants (its real learning rate among them) are in the code. It works on any
    parameter pytree, under ``jax.jit`` and inside ``optax.chain``, and needs ``params``
    in ``update`` (the program reads the weights).

    Args:
      program: a valid program.
      name: what the optimizer is called in the module's docstring.

    Returns:
      The module's source text.

    Raises:
      ProgramError: if the program does not type-check.
    """
    _ = program.kinds
    _, kernels = _registry_source()
    used = list(dict.fromkeys(s.op for s in program.statements))
    binds, needed = [], ["_leafwise"] if any(OPS[op].kind == "elementwise" for op in used) else []
    for op_name in used:
        text = " ".join(kernels[op_name].split())  # one line: kernels are expressions
        needed += [d for d in _dependencies(text) if d not in needed]
        bound = f"({text})(jnp)"
        if OPS[op_name].kind == "elementwise":
            bound = f"_leafwise({bound})"
        binds.append(f"op_{op_name} = {bound}  # {OPS[op_name].doc}")
    needed = [d for d in needed if d != "_leafwise"] + (["_leafwise"] if "_leafwise" in needed else [])
    imports = ["import math\n"] if "math" in needed else []
    definitions = "\n\n".join(_definition(d) for d in needed if _definition(d))

    local = _safe_names(program)
    arg = lambda a: local[a] if isinstance(a, str) else repr(float(a))  # noqa: E731
    body = [
        f"    {local[s.target]} = op_{s.op}({', '.join(arg(a) for a in s.args)})" for s in program.statements
    ]
    slots = ", ".join(local[s] for s in program.state)
    signature = (
        ", ".join(local[i] for i in ("w", "g", *program.state, "lr")) + ", " + local.get("step", "step")
    )
    returned = f"{local[program.update]}, ({slots}{',' if len(program.state) == 1 else ''})"
    functions = "\n".join(f"  {op}: {OPS[op].doc}" for op in used)
    program_text = textwrap.indent(program.to_text(), "    ")
    return _TEMPLATE.format(
        name=name,
        program=program_text.rstrip(),
        functions=functions or "  (none)",
        imports="".join(imports),
        definitions=definitions,
        binds="\n".join(binds),
        signature=signature,
        body="\n".join(body) or "    pass",
        returned=returned,
        num_slots=len(program.state),
    )


_TEMPLATE = '''"""{name}: an optimizer written as a symdisc program, exported as an optax optimizer.

The program (arXiv:2302.06675, section 2: the training loop applies w = w - update after
every step; ``lr`` is the learning-rate schedule's value, ``step`` the 1-based step count;
each state slot starts at zeros shaped like the parameters):

{program}

Its functions, with their out-of-domain rules (tree values are tuples of arrays, one per
parameter array; scalars broadcast over every array):

{functions}

Usage (needs only jax and optax)::

    tx = optimizer(learning_rate=1.0)  # a float or an optax schedule: the program's ``lr``
    updates, state = tx.update(grads, state, params)  # params are required
"""

from __future__ import annotations

{imports}from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

# ---- the DSL functions this program uses, copied from symdisc's op registry (dsl/_ops.py)


{definitions}

{binds}

NUM_STATE_SLOTS = {num_slots}


def _train({signature}):
    """One step of the program on tuples of arrays; returns (update, new state slots)."""
{body}
    return {returned}


class ProgramState(NamedTuple):
    """The step count (from 0) and one tree per state slot."""

    count: jax.Array
    slots: tuple


def optimizer(learning_rate: Any = 1.0) -> optax.GradientTransformation:
    """The program as an optax GradientTransformation.

    Args:
      learning_rate: the program's ``lr`` input: a float, or an optax schedule called with
        the step count (from 0).

    Returns:
      A GradientTransformation whose ``update(grads, state, params)`` needs ``params`` and
      returns the negated program update, so ``optax.apply_updates`` subtracts it.
    """

    def init(params):
        slots = tuple(jax.tree_util.tree_map(jnp.zeros_like, params) for _ in range(NUM_STATE_SLOTS))
        return ProgramState(jnp.zeros([], jnp.int32), slots)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("this optimizer reads the weights: pass params to update()")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        w, treedef = jax.tree_util.tree_flatten(params)
        g = treedef.flatten_up_to(updates)
        slots = [tuple(treedef.flatten_up_to(slot)) for slot in state.slots]
        step = state.count + 1
        step_update, new_slots = _train(
            tuple(w), tuple(g), *slots, jnp.asarray(lr, jnp.float32), jnp.asarray(step, jnp.float32)
        )

        def like(values, old):
            return treedef.unflatten([v.astype(o.dtype) for v, o in zip(values, old, strict=True)])

        negated = jax.tree_util.tree_map(jnp.negative, like(step_update, w))
        new_slots = tuple(like(new, old) for new, old in zip(new_slots, slots, strict=True))
        return negated, ProgramState(optax.safe_increment(state.count), new_slots)

    return optax.GradientTransformation(init, update)
'''
