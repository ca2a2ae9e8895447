"""A DSL program as data: encoded into integer arrays and run by one compiled interpreter.

Compiling a JAX training loop costs about a second; running it costs tens of
milliseconds. So a candidate program does not become traced code: it is encoded
into small arrays (opcodes, register numbers, scalar slots) that a single compiled
interpreter reads, and every program of a size bucket runs through the same
executable.

Representation. The parameters are flattened into one float32 vector of length N
(``jax.flatten_util.ravel_pytree`` order, which is the tree-flatten order that
``dsl.execute`` uses). Every DSL value that depends on the parameters, the gradient
or the state is a length-N vector:

* a TREE value is the vector itself;
* a PER_ARRAY value (what ``norm`` returns) is constant within each parameter
  array's segment;
* a SCALAR value (``global_norm(g)``) is constant everywhere.

Elementwise functions then apply to the vectors as they are (``op.kernel(jnp)``).
The reductions depend on the argument kinds, which are known when encoding
(``program.kinds``), so the encoder picks a *mode* per argument: a sum over a TREE
adds every element, a sum over a PER_ARRAY value adds each segment once (only the
segment's first element is kept). This reproduces ``dsl.execute`` exactly, up to
float32 summation order.

The scalar schedule (loop-invariant code motion). The statements that read only
``lr``, ``step``, constants and each other (``b1t = power(0.9, step)``,
``bc1 = 1 - b1t``, ``lr = lr * 0.001``) do not depend on the training state, so they
are *hoisted* out of the training loop: before it, one vectorised pre-pass runs them
over every training step at once (numpy on the host, over vectors of length
``steps``) and fills a ``[steps, S]`` table of scalar slots: 0 ``lr``,
1 ``step``, then the program's constants, then the hoisted results. Each training
step reads its row of the table and runs only the statements that touch trees; an
argument is either a register or a scalar slot of that row (a shape-() value that
XLA broadcasts inside the op's kernel). This matters: ``power`` over N elements
costs ~45 us per statement on these CPUs, a cheap elementwise statement ~1.5 us.

Registers. Values live in a register file ``[6 + temps, N]``: 0 ``w``, 1 ``g``,
2-5 the state slots, then temporaries. The final value of each state slot is
written to the slot's register, so the state carries over to the next step with
no copy. Temporaries are allocated by liveness, so a register is reused as soon as
its value is dead.

Dispatch. ``lax.fori_loop`` over the program's statements (its trip count is
data, so padding costs nothing) and ``lax.switch`` over the ops.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dsl import DIVISION_EPSILON, OPS, Kind, Program, ProgramError, prune

REGISTER_W = 0
REGISTER_G = 1
REGISTER_STATE = 2  # up to 4 state slots: registers 2..5
FIXED_REGISTERS = 6

SLOT_LR = 0
SLOT_STEP = 1
FIXED_SLOTS = 2

BUCKETS: tuple[tuple[int, int], ...] = ((32, 16), (128, 64), (512, 256))
"""(maximum statements, temporary registers) of each compiled size, smallest first.

The statement count only sizes the small encoding arrays (the loops run the
program's own length); the temporaries size the register file.
"""

# Branch order of the interpreter's lax.switch: every op of the registry, by name.
OP_NAMES: tuple[str, ...] = tuple(OPS)
OPCODE = {name: index for index, name in enumerate(OP_NAMES)}

MODE_FULL = 0  # a sum over a TREE value: every element
MODE_PER_ARRAY = 1  # a sum over a PER_ARRAY value: each segment's first element


def scalar_slots(max_statements: int) -> int:
    """Scalar slots of a bucket: lr, step, up to 3 constants and 1 result per statement."""
    return FIXED_SLOTS + 4 * max_statements


# ----------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class EncodedProgram:
    """A program as arrays for the interpreter (numpy, host side).

    The per-step statements (those that touch trees) and the hoisted schedule
    statements (scalars only) are encoded separately; ``L`` is the bucket's maximum
    statement count, ``S = scalar_slots(L)``.

    Attributes:
      opcode: ``[L]`` int32, index into ``OP_NAMES``, per-step statements.
      arg_index: ``[L, 3]`` int32, the register or scalar slot each argument reads
        (0 if unused).
      arg_is_scalar: ``[L, 3]`` bool, ``arg_index`` is a scalar slot, not a register.
      mode: ``[L, 3]`` int32, reduction modes (see ``_reduction_modes``).
      target: ``[L]`` int32, the register the result goes to.
      length: number of per-step statements to run (the rest is padding).
      hoisted_opcode: ``[L]`` int32, the schedule statements' ops.
      hoisted_arg_slot: ``[L, 3]`` int32, the scalar slot each of their arguments reads.
      hoisted_target: ``[L]`` int32, the scalar slot each result goes to.
      hoisted_length: number of schedule statements.
      slot_constant: ``[S]`` float32, the constant held by each constant slot (0 elsewhere).
      update_register: the register holding the update at the end of a step.
      num_state: number of state slots.
      bucket: (maximum statements, temporaries) of the compiled interpreter to use.
      program: the pruned program that was encoded.
    """

    opcode: np.ndarray
    arg_index: np.ndarray
    arg_is_scalar: np.ndarray
    mode: np.ndarray
    target: np.ndarray
    length: int
    hoisted_opcode: np.ndarray
    hoisted_arg_slot: np.ndarray
    hoisted_target: np.ndarray
    hoisted_length: int
    slot_constant: np.ndarray
    update_register: int
    num_state: int
    bucket: tuple[int, int]
    program: Program

    def arrays(self) -> dict[str, np.ndarray]:
        """The data the compiled interpreter reads (fixed shapes per bucket).

        The schedule statements are not in it: ``schedule_table`` runs them on the host.
        """
        return {
            "opcode": self.opcode,
            "arg_index": self.arg_index,
            "arg_is_scalar": self.arg_is_scalar,
            "mode": self.mode,
            "target": self.target,
            "length": np.int32(self.length),
            "update_register": np.int32(self.update_register),
        }

    def packed(self) -> np.ndarray:
        """``arrays()`` in one int32 vector (floats by their bits), see ``unpack``.

        One argument instead of twelve: handing the arrays to the compiled loop one by
        one cost about 1 ms per evaluation, a tenth of a task A evaluation.
        """
        arrays = self.arrays()
        parts = []
        for name, shape, dtype in code_fields(self.bucket[0]):
            value = np.asarray(arrays[name], dtype).reshape(shape)
            parts.append(
                value.view(np.int32).ravel() if dtype == np.float32 else value.astype(np.int32).ravel()
            )
        return np.concatenate(parts)


def code_fields(max_statements: int) -> tuple[tuple[str, tuple[int, ...], type], ...]:
    """(name, shape, dtype) of each array of ``EncodedProgram.arrays()``, in packing order."""
    n = max_statements
    return (
        ("opcode", (n,), np.int32),
        ("arg_index", (n, 3), np.int32),
        ("arg_is_scalar", (n, 3), np.bool_),
        ("mode", (n, 3), np.int32),
        ("target", (n,), np.int32),
        ("length", (), np.int32),
        ("update_register", (), np.int32),
    )


def unpack(packed: jax.Array, max_statements: int) -> dict[str, jax.Array]:
    """``EncodedProgram.packed()`` back into the ``arrays()`` dict, traceable."""
    code = {}
    offset = 0
    for name, shape, dtype in code_fields(max_statements):
        size = math.prod(shape)
        value = packed[offset : offset + size].reshape(shape)
        offset += size
        if dtype == np.float32:
            value = lax.bitcast_convert_type(value, jnp.float32)
        elif dtype == np.bool_:
            value = value != 0
        code[name] = value
    return code


def _reduction_modes(op: str, arg_kinds: tuple[Kind, ...]) -> tuple[int, int, int]:
    """Per-statement modes: which sums count each segment once instead of every element.

    ``norm``/``global_norm``/``clip``: mode 0 is the kind of x. ``dot``: mode 0 is
    per-array only when both arguments are (a TREE times a PER_ARRAY value is a TREE).
    ``cosine_sim``: mode 0 for the dot, modes 1 and 2 for the two norms.
    """

    def per_array(*kinds: Kind) -> int:
        return MODE_PER_ARRAY if all(k is Kind.PER_ARRAY for k in kinds) else MODE_FULL

    if op in ("norm", "global_norm", "clip"):
        return per_array(arg_kinds[0]), 0, 0
    if op == "dot":
        return per_array(*arg_kinds), 0, 0
    if op == "cosine_sim":
        return per_array(*arg_kinds), per_array(arg_kinds[0]), per_array(arg_kinds[1])
    return 0, 0, 0


def _is_schedule_op(op: str) -> bool:
    """Ops that may be hoisted when every argument is a schedule scalar (no reductions)."""
    return OPS[op].kind in ("elementwise", "constant")


def encode(program: Program, buckets: tuple[tuple[int, int], ...] = BUCKETS) -> EncodedProgram:
    """Prune, type-check and encode ``program`` for the interpreter.

    Raises:
      ProgramError: if the program does not type-check or needs more statements or
        registers than the largest bucket.
    """
    _ = program.kinds  # type-check the original, so errors name its lines
    program = prune(program)
    kinds_of_results = program.kinds
    statements = program.statements

    # SSA values: statement i's result is value i; the inputs are -1 - k.
    fixed = {"w": REGISTER_W, "g": REGISTER_G}
    fixed.update({name: REGISTER_STATE + k for k, name in enumerate(program.state)})
    current_value: dict[str, int] = {name: -1 - reg for name, reg in fixed.items()}
    # Scalar slots: lr and step, then constants, then the hoisted results.
    slot_of: dict[int, int] = {}
    current_value["lr"] = -100
    slot_of[-100] = SLOT_LR
    if program.uses_step:
        current_value["step"] = -101
        slot_of[-101] = SLOT_STEP
    constant_slot: dict[float, int] = {}

    def slot_for_constant(value: float) -> int:
        key = float(np.float32(value))
        if key not in constant_slot:
            constant_slot[key] = FIXED_SLOTS + len(constant_slot)
        return constant_slot[key]

    hoisted: list[int] = []  # statement indices of the schedule
    per_step: list[int] = []
    arg_values: dict[int, list[int | None]] = {}
    for index, statement in enumerate(statements):
        values = [current_value[arg] if isinstance(arg, str) else None for arg in statement.args]
        arg_values[index] = values
        if _is_schedule_op(statement.op) and all(v is None or v in slot_of for v in values):
            hoisted.append(index)
            slot_of[index] = -1  # assigned below, once the constants are counted
        else:
            per_step.append(index)
        for arg in statement.args:
            if not isinstance(arg, str):
                slot_for_constant(arg)
        current_value[statement.target] = index
    first_result_slot = FIXED_SLOTS + len(constant_slot)
    for k, index in enumerate(hoisted):
        slot_of[index] = first_result_slot + k

    # Liveness of the register values (per-step results and tree inputs).
    last_use: dict[int, int] = {}
    for position, index in enumerate(per_step):
        for value in arg_values[index]:
            if value is not None and value not in slot_of:
                last_use[value] = position
    end = len(per_step)
    for name in program.outputs:
        last_use[current_value[name]] = end
    final_state_def = {current_value[name]: fixed[name] for name in program.state if current_value[name] >= 0}

    # Register allocation: fixed registers for inputs and final state values, a free list for the rest.
    register_of: dict[int, int] = {-1 - reg: reg for reg in fixed.values()}
    free: list[int] = []
    next_temp = FIXED_REGISTERS
    peak_temps = 0
    targets: list[int] = []
    for position, index in enumerate(per_step):
        for value in set(v for v in arg_values[index] if v is not None and v not in slot_of):
            if last_use.get(value) == position and register_of[value] >= FIXED_REGISTERS:
                free.append(register_of[value])
        if index in final_state_def:
            register = final_state_def[index]
        elif free:
            free.sort()
            register = free.pop(0)
        else:
            register = next_temp
            next_temp += 1
        peak_temps = max(peak_temps, next_temp - FIXED_REGISTERS)
        register_of[index] = register
        targets.append(register)
        if index not in last_use and register >= FIXED_REGISTERS:
            free.append(register)  # dead result (cannot happen after pruning, but harmless)

    bucket = next(((n, t) for n, t in buckets if len(statements) <= n and peak_temps <= t), None)
    if bucket is None:
        largest = buckets[-1]
        raise ProgramError(
            f"program needs {len(statements)} statements and {peak_temps} temporary registers after "
            f"pruning; the interpreter's largest size holds {largest[0]} and {largest[1]}"
        )
    max_statements = bucket[0]

    def slot_or_constant(arg, value) -> int:
        return slot_for_constant(arg) if value is None else slot_of[value]

    hoisted_opcode = np.zeros(max_statements, np.int32)
    hoisted_arg_slot = np.zeros((max_statements, 3), np.int32)
    hoisted_target = np.zeros(max_statements, np.int32)
    for k, index in enumerate(hoisted):
        statement = statements[index]
        hoisted_opcode[k] = OPCODE[statement.op]
        for position, (arg, value) in enumerate(zip(statement.args, arg_values[index], strict=True)):
            hoisted_arg_slot[k, position] = slot_or_constant(arg, value)
        hoisted_target[k] = slot_of[index]
    slot_constant = np.zeros(scalar_slots(max_statements), np.float32)
    for value, slot in constant_slot.items():
        slot_constant[slot] = value

    opcode = np.zeros(max_statements, np.int32)
    arg_index = np.zeros((max_statements, 3), np.int32)
    arg_is_scalar = np.zeros((max_statements, 3), bool)
    mode = np.zeros((max_statements, 3), np.int32)
    target = np.zeros(max_statements, np.int32)
    for position, index in enumerate(per_step):
        statement = statements[index]
        opcode[position] = OPCODE[statement.op]
        arg_kinds = []
        for slot, (arg, value) in enumerate(zip(statement.args, arg_values[index], strict=True)):
            if value is None or value in slot_of:
                arg_is_scalar[position, slot] = True
                arg_index[position, slot] = slot_or_constant(arg, value)
                arg_kinds.append(Kind.SCALAR)
            else:
                arg_index[position, slot] = register_of[value]
                arg_kinds.append(Kind.TREE if value < 0 else kinds_of_results[value])  # inputs are trees
        mode[position] = _reduction_modes(statement.op, tuple(arg_kinds))
        target[position] = targets[position]
    return EncodedProgram(
        opcode=opcode,
        arg_index=arg_index,
        arg_is_scalar=arg_is_scalar,
        mode=mode,
        target=target,
        length=len(per_step),
        hoisted_opcode=hoisted_opcode,
        hoisted_arg_slot=hoisted_arg_slot,
        hoisted_target=hoisted_target,
        hoisted_length=len(hoisted),
        slot_constant=slot_constant,
        update_register=register_of[current_value[program.update]],
        num_state=len(program.state),
        bucket=bucket,
        program=program,
    )


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """How the flat parameter vector splits into arrays (static, per model)."""

    sizes: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    @property
    def starts(self) -> tuple[int, ...]:
        return tuple(int(s) for s in np.cumsum((0,) + self.sizes[:-1]))

    def keep_masks(self) -> np.ndarray:
        """``[2, N]`` bool: row MODE_FULL keeps every element, row MODE_PER_ARRAY each segment's first."""
        masks = np.zeros((2, self.size), bool)
        masks[MODE_FULL] = True
        masks[MODE_PER_ARRAY, list(self.starts)] = True
        return masks

    def segment_sums(self, x: jax.Array) -> jax.Array:
        """``[num_arrays]``: the sum of each segment (static slices)."""
        return jnp.stack(
            [jnp.sum(x[start : start + size]) for start, size in zip(self.starts, self.sizes, strict=True)]
        )

    def spread(self, per_segment: jax.Array) -> jax.Array:
        """``[N]``: each segment's value repeated over the segment."""
        return jnp.repeat(per_segment, np.asarray(self.sizes), total_repeat_length=self.size)


def layout_of(params) -> Layout:
    """The layout of a params pytree (tree-flatten order, as ``dsl.execute`` uses)."""
    leaves = jax.tree_util.tree_leaves(params)
    return Layout(tuple(int(math.prod(np.shape(leaf))) for leaf in leaves))


# ----------------------------------------------------------------------------- interpreter


def _branches(layout: Layout, masks: jax.Array) -> list[Callable]:
    """One function ``(x, y, z, modes) -> [N]`` per op, in ``OP_NAMES`` order."""
    n = layout.size

    def kept(v, mode):
        return jnp.where(masks[mode], v, 0.0)

    def global_norm(x, mode):
        return jnp.sqrt(jnp.sum(kept(x * x, mode)))

    def dot(x, y, mode):
        return jnp.sum(kept(x * y, mode))

    def norm(x, y, z, modes):
        return layout.spread(jnp.sqrt(layout.segment_sums(kept(x * x, modes[0]))))

    def global_norm_branch(x, y, z, modes):
        return jnp.full(n, global_norm(x, modes[0]))

    def dot_branch(x, y, z, modes):
        return jnp.full(n, dot(x, y, modes[0]))

    def cosine_sim(x, y, z, modes):
        denominator = global_norm(x, modes[1]) * global_norm(y, modes[2]) + DIVISION_EPSILON
        return jnp.full(n, dot(x, y, modes[0]) / denominator)

    def clip(x, c, z, modes):
        factor = jnp.minimum(1.0, c / (global_norm(x, modes[0]) + DIVISION_EPSILON))
        return x * factor

    special = {
        "norm": norm,
        "global_norm": global_norm_branch,
        "dot": dot_branch,
        "cosine_sim": cosine_sim,
        "clip": clip,
    }

    def lift(op):
        kernel = op.kernel(jnp)
        if op.arity == 0:
            return lambda x, y, z, modes: jnp.broadcast_to(kernel(), (n,))
        if op.arity == 1:
            return lambda x, y, z, modes: kernel(x)
        if op.arity == 2:
            return lambda x, y, z, modes: kernel(x, y)
        return lambda x, y, z, modes: kernel(x, y, z)

    branches = []
    for name in OP_NAMES:
        op = OPS[name]
        if name in special:
            branches.append(special[name])
        elif op.kind in ("elementwise", "constant"):
            branches.append(lift(op))
        else:
            raise AssertionError(f"the interpreter has no branch for {op.kind} op {name!r}")
    return branches


def schedule_table(encoded: EncodedProgram, lr: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Run the hoisted schedule statements for every training step at once, on the host.

    The statements are elementwise over scalars, so numpy float32 over vectors of
    length ``steps`` computes every step in a few microseconds per statement (the
    same kernels as in JAX, ``op.numpy_fn()``, equal up to float32 rounding). Running
    them on the host rather than in the compiled loop saves ~2 s of compilation per
    task (a second ``lax.switch`` over every op).

    Args:
      encoded: the encoded program.
      lr: ``[steps]`` float32, the schedule value at each step.
      step: ``[steps]`` float32, the 1-based step number.

    Returns:
      ``[steps, S]`` float32: row t holds the scalar slots of step t (lr, step, the
      constants, the hoisted results), what ``make_program_step`` reads.
    """
    num_steps = len(lr)
    table = np.repeat(encoded.slot_constant[:, None], num_steps, axis=1)
    table[SLOT_LR] = lr
    table[SLOT_STEP] = step
    with np.errstate(all="ignore"):  # inf/NaN are the candidate's failure, found in the loop
        for k in range(encoded.hoisted_length):
            op = OPS[OP_NAMES[encoded.hoisted_opcode[k]]]
            args = [table[slot] for slot in encoded.hoisted_arg_slot[k, : op.arity]]
            table[encoded.hoisted_target[k]] = op.numpy_fn()(*args)
    return np.ascontiguousarray(table.T)


def make_program_step(layout: Layout) -> Callable:
    """The per-step interpreter for one parameter layout.

    Returns:
      ``step(code, registers, scalars, w, g) -> (update, registers)``, traceable.
      ``code`` is ``EncodedProgram.arrays()`` (as jax arrays); ``registers`` is the
      ``[6 + temps, N]`` register file carried from the previous step (its state
      registers hold the state); ``scalars`` is this step's ``[S]`` row of
      ``schedule_table``; ``w``, ``g`` are ``[N]``.
    """
    masks_np = layout.keep_masks()

    def program_step(code, registers, scalars, w, g):
        masks = jnp.asarray(masks_np)

        def reading_arguments(branch):
            # Reading the arguments inside the branch lets XLA fuse the register reads
            # into the op's kernel (measured ~20% faster per statement than reading outside).
            def run(registers, scalars, arg_index, arg_is_scalar, modes):
                args = [
                    jnp.where(
                        arg_is_scalar[k],
                        scalars[arg_index[k]],
                        lax.dynamic_index_in_dim(registers, arg_index[k], keepdims=False),
                    )
                    for k in range(3)
                ]
                return branch(*args, modes)

            return run

        branches = [reading_arguments(branch) for branch in _branches(layout, masks)]
        registers = registers.at[REGISTER_W].set(w).at[REGISTER_G].set(g)

        def run_statement(i, registers):
            result = lax.switch(
                code["opcode"][i],
                branches,
                registers,
                scalars,
                code["arg_index"][i],
                code["arg_is_scalar"][i],
                code["mode"][i],
            )
            return lax.dynamic_update_index_in_dim(registers, result, code["target"][i], 0)

        registers = lax.fori_loop(0, code["length"], run_statement, registers)
        update = lax.dynamic_index_in_dim(registers, code["update_register"], keepdims=False)
        return update, registers

    return program_step


def initial_registers(bucket: tuple[int, int], layout: Layout) -> jax.Array:
    """The register file at the first step: zeros (so every state slot starts at zero)."""
    return jnp.zeros((FIXED_REGISTERS + bucket[1], layout.size), jnp.float32)


@functools.lru_cache(maxsize=16)
def _jitted_program_step(layout: Layout) -> Callable:
    program_step = make_program_step(layout)

    def one_step(packed, max_statements, registers, scalars, w, g):
        return program_step(unpack(packed, max_statements), registers, scalars, w, g)

    return jax.jit(one_step, static_argnums=1)


def execute(program: Program, w, g, state, lr, step=1):
    """One step of ``program`` through the interpreter, with ``dsl.execute``'s signature.

    Meant for checking the interpreter against ``dsl.execute``; training uses
    ``schedule_table`` and ``make_program_step`` inside a compiled loop instead.

    Returns:
      ``(update, new_state)`` as pytrees shaped like ``w``.
    """
    from jax.flatten_util import ravel_pytree

    encoded = encode(program)
    if len(state) != encoded.num_state:
        raise ValueError(f"program has {encoded.num_state} state slot(s), got {len(state)} state trees")
    flat_w, unravel = ravel_pytree(w)
    layout = layout_of(w)
    registers = initial_registers(encoded.bucket, layout)
    for k, slot in enumerate(state):
        registers = registers.at[REGISTER_STATE + k].set(ravel_pytree(slot)[0])
    scalars = schedule_table(encoded, np.array([lr], np.float32), np.array([step], np.float32))[0]
    update, registers = _jitted_program_step(layout)(
        encoded.packed(), encoded.bucket[0], registers, scalars, flat_w, ravel_pytree(g)[0]
    )
    new_state = tuple(unravel(registers[REGISTER_STATE + k]) for k in range(encoded.num_state))
    return unravel(update), new_state
