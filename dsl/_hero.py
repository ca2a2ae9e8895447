"""Read programs written in the authors' released notation ("hero", GitHub google/automl).

Their optimizers are written::

    def train(w, m, v, gradient):
      m = interpolate(m, gradient, 0.1)
      epsilon = 1e-8
      ...
      return (update, m, v)

The first argument is the weights, the last the gradient, those between are state
slots; there is no learning-rate input, so the update is the step direction and the
training loop scales it. ``from_hero`` turns such a program into a DSL program
``train(w, g, <state...>, lr)`` with the same updates: their function names map to the
DSL's (``interpolate`` -> ``interp``, ``get_pi()`` -> ``pi()``, ``clip_by_global_norm`` ->
``clip``, ...), constant assignments (``epsilon = 1e-8``) are substituted where used,
nested expressions become one statement each, and a final ``update = update * lr`` lets
the schedule scale the update (with ``lr = 1`` the updates are theirs exactly).

Functions whose out-of-domain rule differs between the two spaces are listed in
``HERO_DIFFERENCES`` (and in docs/dsl.md): on inputs inside every function's domain the
updates agree to float32 rounding.
"""

from __future__ import annotations

import ast
import math

from ._program import RESERVED_INPUTS, Program, ProgramError, Statement

HERO_FUNCTIONS: dict[str, str] = {
    "get_pi": "pi",
    "get_e": "e",
    "get_eps": "eps",
    **{
        name: name
        for name in (
            "abs cos sin tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 "
            "exp10 expm1 log log10 log2 log1p square sqrt cube cbrt sign reciprocal negative norm "
            "global_norm dot cosine_sim power max min"
        ).split()
    },
    "interpolate": "interp",
    "clip_by_global_norm": "clip",
}
"""Their function name -> the DSL function (same arguments, same order)."""

NO_EQUIVALENT: dict[str, str] = {
    "invert": "is a bitwise NOT in the released space, which fails on float arrays (the DSL has rsqrt instead)",
    "compute_grad": "computes a gradient inside the program; here the gradient is the last argument of train",
    "eval": "evaluates the model inside the program; an optimizer here sees only weights, gradient and state",
}

HERO_DIFFERENCES: dict[str, str] = {
    "reciprocal": "theirs is 1 / x (inf at 0); the DSL's is 1 / (x + 1e-8)",
    "cosine_sim": "theirs divides by norm(x) * norm(y) without an epsilon (NaN for a zero tree)",
    "clip": "theirs divides the threshold by global_norm(x) without an epsilon",
    "arcsin": "theirs is NaN outside [-1, 1]; the DSL clips the input to [-1, 1]",
    "arccos": "theirs is NaN outside [-1, 1]; the DSL clips the input to [-1, 1]",
    "arctanh": "theirs is NaN outside [-1, 1]; the DSL clips the input to [-1, 1]",
    "arccosh": "theirs is NaN below 1; the DSL raises the input to at least 1",
    "power": "theirs is x^y (NaN for a negative base and a non-integer y, the base's sign for odd integer y); "
    "the DSL's is |x|^y",
    "cube": "theirs is power(x, 3); the DSL's x * x * x (equal up to rounding)",
    "cbrt": "theirs returns the function itself (a bug: any use fails); the DSL's is the cube root",
}
"""DSL function -> how its released counterpart differs (the DSL's rules are in dsl/_ops.py)."""

_BINARY = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}
_OTHER_OPERATORS = {ast.Pow: "**", ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitXor: "^"}


class _Converter:
    def __init__(self, text: str):
        self.text = text
        self.statements: list[Statement] = []
        self.lines: list[int] = []
        self.names: dict[str, str] = {}  # their variable -> DSL variable
        self.constants: dict[str, float] = {}  # their variable bound to a number
        self.used: set[str] = set(RESERVED_INPUTS)
        self.temporaries = 0

    # -- names

    def fresh(self, base: str) -> str:
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name

    def bind(self, theirs: str) -> str:
        """The DSL name a (new or reassigned) variable of theirs is stored under."""
        if theirs not in self.names:
            self.names[theirs] = theirs if theirs not in self.used else self.fresh(theirs)
            self.used.add(self.names[theirs])
        return self.names[theirs]

    def read(self, theirs: str, line: int) -> str | float:
        if theirs in self.constants:
            return self.constants[theirs]
        if theirs in self.names:
            return self.names[theirs]
        if theirs in HERO_FUNCTIONS or theirs in NO_EQUIVALENT:
            raise ProgramError(f"'{theirs}' is a function: call it, e.g. '{theirs}(...)'", line)
        raise ProgramError(f"variable '{theirs}' is read before it is assigned", line)

    def emit(self, target: str, op: str, args: list, line: int) -> None:
        self.statements.append(Statement(target, op, tuple(args)))
        self.lines.append(line)

    # -- expressions

    def value(self, node: ast.expr, line: int) -> str | float:
        """A variable name or a number holding ``node``'s value (emitting statements)."""
        number = _number(node)
        if number is not None:
            return number
        if isinstance(node, ast.Name):
            return self.read(node.id, line)
        self.temporaries += 1
        target = self.fresh(f"t{self.temporaries}")
        self.assign(target, node, line)
        return target

    def assign(self, target: str, node: ast.expr, line: int) -> None:
        """Emit ``target = node`` as one DSL statement (operands first, if nested)."""
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                symbol = _OTHER_OPERATORS.get(type(node.op), type(node.op).__name__)
                raise ProgramError(f"the operator '{symbol}' is not in the released space", line)
            self.emit(target, op, [self.value(node.left, line), self.value(node.right, line)], line)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            self.emit(target, "negative", [self.value(node.operand, line)], line)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
            self.emit(target, "multiply", [self.value(node.operand, line), 1.0], line)
        elif isinstance(node, ast.Call):
            self.call(target, node, line)
        elif isinstance(node, ast.Name):  # a copy: x * 1.0 is exact
            self.emit(target, "multiply", [self.read(node.id, line), 1.0], line)
        else:
            raise ProgramError(f"{_describe(node)} has no equivalent in the DSL", line)

    def call(self, target: str, node: ast.Call, line: int) -> None:
        if not isinstance(node.func, ast.Name):
            raise ProgramError(f"call a function by name, got '{ast.unparse(node.func)}'", line)
        name = node.func.id
        if name in NO_EQUIVALENT:
            raise ProgramError(f"'{name}' has no equivalent in the DSL: it {NO_EQUIVALENT[name]}", line)
        if name not in HERO_FUNCTIONS:
            raise ProgramError(f"'{name}' is not a function of the released space", line)
        if node.keywords:
            raise ProgramError(f"'{name}' takes positional arguments only", line)
        ours = HERO_FUNCTIONS[name]
        self.emit(target, ours, [self.value(arg, line) for arg in node.args], line)


def _number(node: ast.expr) -> float | None:
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return sign * float(node.value)
    return None


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.If: "an 'if' statement",
        ast.For: "a 'for' loop",
        ast.While: "a 'while' loop",
        ast.Compare: "a comparison",
        ast.BoolOp: "'and'/'or'",
        ast.Subscript: "subscripting",
        ast.Attribute: "attribute access",
        ast.Lambda: "a lambda",
        ast.IfExp: "a conditional expression",
    }
    if isinstance(node, ast.UnaryOp):
        return {ast.Invert: "'~' (bitwise NOT)", ast.Not: "'not'"}.get(type(node.op), "this operator")
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    return kinds.get(type(node), f"'{type(node).__name__}'")


def from_hero(text: str, scale_by_lr: bool = True) -> Program:
    """A DSL program from one written in the authors' released notation.

    Args:
      text: ``def train(w, <state...>, gradient):`` with assignments and a final
        ``return (update, <state...>)``.
      scale_by_lr: append ``update = update * lr`` (their programs have no learning-rate
        input; with ``lr = 1`` the updates are unchanged).

    Returns:
      The program ``train(w, g, <state...>, lr)``.

    Raises:
      ProgramError: naming the line and the construct that has no equivalent (a call of
        ``compute_grad``, a loop, an unknown function, ...).
    """
    try:
        module = ast.parse(text)
    except SyntaxError as error:
        raise ProgramError(f"syntax error: {error.msg}", error.lineno) from None
    functions = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    for node in module.body:
        if not isinstance(node, ast.FunctionDef) or node.name != "train":
            raise ProgramError(f"only 'def train(...)' is converted, found {_top_level(node)}", node.lineno)
    if len(functions) != 1:
        raise ProgramError("expected one 'def train(w, <state...>, gradient):'", 1 if not functions else 2)
    function = functions[0]
    converter = _Converter(text)
    params = [a.arg for a in function.args.args]
    if len(params) < 2 or function.args.vararg or function.args.kwarg or function.args.kwonlyargs:
        raise ProgramError("the signature must be train(w, <state...>, gradient)", function.lineno)
    if len(set(params)) != len(params):
        raise ProgramError("the arguments of train must have distinct names", function.lineno)
    weights, *state, gradient = params
    converter.names.update({weights: "w", gradient: "g"})
    slots = []
    for name in state:
        slots.append(name if name not in converter.used else converter.fresh(name))
        converter.used.add(slots[-1])
        converter.names[name] = slots[-1]
    *body, last = function.body
    lines = [function.lineno]
    for node in body:
        _statement(converter, node)
    if not isinstance(last, ast.Return):
        raise ProgramError("the function must end with 'return (update, <state...>)'", last.lineno)
    returned = _returned(converter, last, len(state))
    update, outputs = returned[0], returned[1:]
    line = last.lineno
    if scale_by_lr:
        scaled = update if update not in (*slots, *outputs, "w", "g") else converter.fresh("update")
        converter.emit(scaled, "multiply", [update, "lr"], line)
        update = scaled
    _copy_into_slots(converter, slots, outputs, line)
    lines += converter.lines
    lines.append(line)
    return Program(tuple(slots), tuple(converter.statements), update, False, source_lines=tuple(lines))


def _top_level(node: ast.stmt) -> str:
    if isinstance(node, ast.FunctionDef):
        return f"'def {node.name}'"
    return _describe(node) if not isinstance(node, ast.Assign) else "an assignment outside train"


def _statement(converter: _Converter, node: ast.stmt) -> None:
    line = node.lineno
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ):
        return  # a docstring
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        node = ast.Assign(
            [node.target], ast.BinOp(ast.Name(node.target.id), node.op, node.value), lineno=line
        )
    if not isinstance(node, ast.Assign):
        raise ProgramError(f"{_describe(node)} has no equivalent in the DSL (straight-line code only)", line)
    if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
        raise ProgramError("assign to exactly one variable name", line)
    theirs = node.targets[0].id
    number = _number(node.value)
    if number is not None:
        if not math.isfinite(number):
            raise ProgramError(f"constant {number!r} is not finite", line)
        converter.constants[theirs] = number  # substituted where it is read
        return
    if isinstance(node.value, ast.Name) and node.value.id in converter.constants:
        converter.constants[theirs] = converter.constants[node.value.id]
        return
    converter.assign(converter.bind(theirs), node.value, line)
    converter.constants.pop(theirs, None)  # after the operands: 'x = 0.5' then 'x = x * g'


def _returned(converter: _Converter, node: ast.Return, num_slots: int) -> list[str]:
    value = node.value
    items = value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value] if value is not None else []
    if len(items) != num_slots + 1:
        raise ProgramError(
            f"return the update and the {num_slots} state value(s), got {len(items)} value(s)", node.lineno
        )
    names = []
    for item in items:
        if not isinstance(item, ast.Name):
            raise ProgramError("return variable names: 'return (update, <state...>)'", node.lineno)
        value = converter.read(item.id, node.lineno)
        if not isinstance(value, str):
            raise ProgramError(
                f"'{item.id}' is the constant {value!r}, not a tree shaped like the weights", node.lineno
            )
        names.append(value)
    return names


def _copy_into_slots(converter: _Converter, slots: list[str], outputs: list[str], line: int) -> None:
    """Make each slot hold its returned value (through temporaries if they overlap)."""
    pending = [(slot, out) for slot, out in zip(slots, outputs, strict=True) if slot != out]
    if any(out in slots for _, out in pending):
        staged = []
        for slot, out in pending:
            temporary = converter.fresh(f"{slot}_next")
            converter.emit(temporary, "multiply", [out, 1.0], line)
            staged.append((slot, temporary))
        pending = staged
    for slot, out in pending:
        converter.emit(slot, "multiply", [out, 1.0], line)
