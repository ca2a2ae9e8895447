"""Programs: immutable ``train(w, g, <state...>, lr[, step])`` bodies, their text and parser.

A program is a straight list of assignments, each calling exactly one function of the
registry on variables or float constants::

    def train(w, g, m, v, lr):
      g2 = square(g)
      m = interp(g, m, 0.9)
      ...
      return update, m, v

``parse(text)`` and ``Program.to_text()`` round-trip exactly.
"""

from __future__ import annotations

import ast
import functools
import io
import math
import tokenize
from dataclasses import dataclass, field

from ._ops import OPS, lookup
from ._types import Kind

Arg = str | float
"""A statement argument: a variable name, or a float constant."""

RESERVED_INPUTS = ("w", "g", "lr", "step")
MAX_STATE_SLOTS = 4
MAX_PROGRAM_STATEMENTS = 1_000
"""``parse`` rejects longer programs (the search's default ``max_length`` is 30)."""
MAX_PROGRAM_CHARACTERS = 100_000
"""``parse`` rejects longer texts before handing them to Python's parser."""


class ProgramError(ValueError):
    """A program that cannot be read, parsed, is malformed, or does not type-check.

    Attributes:
      problem: what is wrong, in words.
      line: the line of the program text (1-based) where it is, or None.
      source: the file (or the name) the program came from, or None.
    """

    def __init__(self, problem: str, line: int | None = None, source: str | None = None):
        self.problem = problem
        self.line = line
        self.source = source
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{source}: {where}{problem}" if source is not None else f"{where}{problem}")

    def __reduce__(self):
        return type(self), (self.problem, self.line, self.source)

    def in_source(self, source: str) -> ProgramError:
        """This error as found in ``source``, unless it already names its source."""
        return self if self.source is not None else ProgramError(self.problem, self.line, source)


@dataclass(frozen=True)
class Statement:
    """``target = op(*args)``: one call of a registry function."""

    target: str
    op: str
    args: tuple[Arg, ...]

    def variables(self) -> tuple[str, ...]:
        """The variable names this statement reads, in argument order."""
        return tuple(a for a in self.args if isinstance(a, str))

    def to_text(self) -> str:
        op = OPS[self.op]
        args = [_format_arg(a) for a in self.args]
        if op.symbol is not None:
            return f"{self.target} = {args[0]} {op.symbol} {args[1]}"
        return f"{self.target} = {self.op}({', '.join(args)})"


def _format_arg(arg: Arg) -> str:
    return arg if isinstance(arg, str) else repr(float(arg))


@dataclass(frozen=True)
class Program:
    """An optimizer: ``def train(w, g, <state...>, lr[, step])`` and its statements.

    Attributes:
      state: names of the state slots, in signature order; returned in the same order.
        Each starts as zeros shaped like the parameters.
      statements: the body.
      update: the variable returned as the update (subtracted from the weights).
      uses_step: whether the signature ends with ``step`` (the 1-based step count).
      source_lines: for a parsed program, the text line of the ``def``, of each
        statement and of the return (used in error messages; not part of equality).
    """

    state: tuple[str, ...] = ("m", "v")
    statements: tuple[Statement, ...] = ()
    update: str = "update"
    uses_step: bool = False
    source_lines: tuple[int, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "state", tuple(self.state))
        object.__setattr__(self, "statements", tuple(self.statements))
        _check_structure(self)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The signature, in order."""
        return ("w", "g", *self.state, "lr") + (("step",) if self.uses_step else ())

    @property
    def outputs(self) -> tuple[str, ...]:
        """The returned variables: the update, then the state slots."""
        return (self.update, *self.state)

    def signature_line(self) -> int:
        """The text line of ``def train(...)`` (the source's, or the canonical text's)."""
        if self.source_lines is not None:
            return self.source_lines[0]
        return 1

    def line_of(self, index: int) -> int:
        """The text line of statement ``index`` (the source's, or the canonical text's)."""
        if self.source_lines is not None:
            return self.source_lines[index + 1]
        return index + 2

    def return_line(self) -> int:
        """The text line of the return statement."""
        if self.source_lines is not None:
            return self.source_lines[-1]
        return len(self.statements) + 2

    def to_text(self) -> str:
        lines = [f"def train({', '.join(self.inputs)}):"]
        lines += [f"  {s.to_text()}" for s in self.statements]
        lines.append(f"  return {', '.join(self.outputs)}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_text()

    def replace_statements(self, statements) -> Program:
        """A copy with another body (same signature)."""
        return Program(self.state, tuple(statements), self.update, self.uses_step)

    def with_argument(self, index: int, position: int, value: Arg) -> Program:
        """A copy with argument ``position`` of statement ``index`` replaced by ``value``."""
        statement = self.statements[index]
        args = list(statement.args)
        args[position] = value
        statements = list(self.statements)
        statements[index] = Statement(statement.target, statement.op, tuple(args))
        return self.replace_statements(statements)

    @functools.cached_property
    def kinds(self) -> tuple[Kind, ...]:
        """The kind of each statement's result; raises ProgramError if it does not type-check."""
        return infer_kinds(self)


def _check_structure(program: Program) -> None:
    """Names, arities and scoping: everything but types."""
    state = program.state
    line = program.signature_line()
    if len(state) > MAX_STATE_SLOTS:
        raise ProgramError(f"at most {MAX_STATE_SLOTS} state slots, got {len(state)}", line)
    for name in state:
        if not isinstance(name, str) or not name.isidentifier():
            raise ProgramError(f"state slot {quote(name)} is not a variable name", line)
        if name in RESERVED_INPUTS:
            raise ProgramError(f"state slot {name!r} clashes with the input {name!r}", line)
    if len(set(state)) != len(state):
        raise ProgramError("state slots must have distinct names", line)
    defined = set(program.inputs)
    for index, statement in enumerate(program.statements):
        line = program.line_of(index)
        op = OPS.get(statement.op)
        if op is None:
            raise ProgramError(f"unknown function {quote(statement.op)}", line)
        if len(statement.args) != op.arity:
            raise ProgramError(f"{op.name} takes {op.arity} argument(s), got {len(statement.args)}", line)
        for arg in statement.args:
            if isinstance(arg, str):
                if arg not in defined:
                    raise ProgramError(f"variable {quote(arg)} is read before it is assigned", line)
            elif isinstance(arg, float) and not isinstance(arg, bool):
                if not math.isfinite(arg):
                    raise ProgramError(f"constant {arg!r} is not finite", line)
            else:
                raise ProgramError(f"argument {quote(arg)} is neither a variable nor a float", line)
        if not statement.target.isidentifier():
            raise ProgramError(f"{quote(statement.target)} is not a variable name", line)
        defined.add(statement.target)
    if program.update not in defined:
        raise ProgramError(
            f"the returned update {quote(program.update)} is never assigned", program.return_line()
        )


def input_kinds(program: Program) -> dict[str, Kind]:
    """The kind of each input, in signature order: ``lr`` and ``step`` scalars, the rest trees."""
    return {name: Kind.SCALAR if name in ("lr", "step") else Kind.TREE for name in program.inputs}


def infer_kinds(program: Program) -> tuple[Kind, ...]:
    """Type-check ``program`` and return the kind of each statement's result.

    Inputs ``w``, ``g`` and the state slots are trees, ``lr`` and ``step`` scalars; the
    update and the final state values must be trees.

    Raises:
      ProgramError: naming the statement's line and the reason.
    """
    kinds = input_kinds(program)
    result = []
    for index, statement in enumerate(program.statements):
        arg_kinds = tuple(kinds[a] if isinstance(a, str) else Kind.SCALAR for a in statement.args)
        try:
            kind = OPS[statement.op].result_kind(arg_kinds)
        except TypeError as error:
            raise ProgramError(str(error), program.line_of(index)) from None
        kinds[statement.target] = kind
        result.append(kind)
    for role, name in zip(
        ("update", *(f"state slot {quote(s)}" for s in program.state)), program.outputs, strict=True
    ):
        if kinds[name] is not Kind.TREE:
            raise ProgramError(
                f"the returned {role} must be a tree shaped like the parameters, "
                f"but {quote(name)} is a {kinds[name].value}",
                program.return_line(),
            )
    return tuple(result)


# ----------------------------------------------------------------------------- parser

_BINARY_OPS = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide", ast.Pow: "power"}


def parse(text: str) -> Program:
    """Parse a program written as ``def train(...)`` with one call per assignment.

    Programs are capped at ``MAX_PROGRAM_CHARACTERS`` characters and
    ``MAX_PROGRAM_STATEMENTS`` statements; parsing takes time linear in the text.

    Raises:
      ProgramError: with the line number and the problem.
    """
    _check_text(text)
    try:
        module = ast.parse(text)
    except SyntaxError as error:
        raise ProgramError(f"syntax error: {_elide(error.msg, 120)}", error.lineno or 1) from None
    except (RecursionError, MemoryError):  # the parser's own stack: an expression nested too deeply
        raise ProgramError(
            "expression nested too deeply: one function call per statement", _most_tokens_line(text)
        ) from None
    functions = [node for node in module.body if isinstance(node, ast.FunctionDef)]
    others = [node for node in module.body if not isinstance(node, ast.FunctionDef)]
    if others:
        raise ProgramError("only 'def train(...)' may appear at the top level", others[0].lineno)
    if len(functions) != 1 or functions[0].name != "train":
        line = functions[1].lineno if len(functions) > 1 else (functions[0].lineno if functions else 1)
        raise ProgramError("expected exactly one function, 'def train(w, g, <state...>, lr)'", line)
    function = functions[0]
    state, uses_step = _parse_signature(function)
    *body, last = function.body
    if len(body) > MAX_PROGRAM_STATEMENTS:
        raise ProgramError(
            f"a program has at most {MAX_PROGRAM_STATEMENTS} statements, this one {len(body)}",
            body[MAX_PROGRAM_STATEMENTS].lineno,
        )
    if not isinstance(last, ast.Return):
        raise ProgramError("the function must end with 'return update, <state...>'", last.end_lineno)
    statements, lines = [], [function.lineno]
    for node in body:
        statements.append(_parse_statement(node, text))
        lines.append(node.lineno)
    update = _parse_return(last, state)
    lines.append(last.lineno)
    return Program(state, tuple(statements), update, uses_step, source_lines=tuple(lines))


def _line_at(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _check_text(text: str) -> None:
    """Reject what Python's parser would not report as a ProgramError with a line."""
    if len(text) > MAX_PROGRAM_CHARACTERS:
        raise ProgramError(
            f"a program has at most {MAX_PROGRAM_CHARACTERS} characters, this one {len(text)}",
            _line_at(text, MAX_PROGRAM_CHARACTERS),
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate
        raise ProgramError(
            f"character {text[error.start]!r} is not valid Unicode text", _line_at(text, error.start)
        ) from None
    null = text.find("\0")
    if null >= 0:
        raise ProgramError("the text contains a null character", _line_at(text, null))


def _most_tokens_line(text: str) -> int:
    """The first line of the logical line with the most tokens (1 if the text does not tokenize)."""
    best_line, best_count, start, count = 1, 0, 1, 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if count == 0:
                start = token.start[0]
            count += 1
            if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if count > best_count:
                    best_line, best_count = start, count
                count = 0
    except (tokenize.TokenError, SyntaxError):
        pass
    return best_line


def quote(value: object, limit: int = 40) -> str:
    """``repr(value)``, its middle elided when longer than ``limit`` (for error messages)."""
    return _elide(repr(value), limit)


def _elide(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = (limit - 5) * 2 // 3
    return f"{text[:head]} ... {text[len(text) - (limit - 5 - head) :]}"


def _reject_annotations(function: ast.FunctionDef) -> None:
    """Decorators and annotations are code the DSL would otherwise silently drop."""
    if function.decorator_list:
        raise ProgramError("decorators are not allowed", function.decorator_list[0].lineno)
    for arg in function.args.args:
        if arg.annotation is not None:
            raise ProgramError(f"annotations are not allowed (on {quote(arg.arg)})", arg.annotation.lineno)
    if function.returns is not None:
        raise ProgramError("a return annotation is not allowed", function.returns.lineno)
    if getattr(function, "type_params", None):  # Python 3.12: def train[T](...)
        raise ProgramError("type parameters are not allowed", function.lineno)


def _parse_signature(function: ast.FunctionDef) -> tuple[tuple[str, ...], bool]:
    line = function.lineno
    args = function.args
    _reject_annotations(function)
    if args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs:
        raise ProgramError("the signature takes plain names only: train(w, g, <state...>, lr)", line)
    names = [a.arg for a in args.args]
    uses_step = bool(names) and names[-1] == "step"
    if uses_step:
        names = names[:-1]
    if len(names) < 3 or names[:2] != ["w", "g"] or names[-1] != "lr":
        raise ProgramError(
            "the signature must be train(w, g, <state...>, lr[, step]), "
            f"got train({_elide(', '.join(a.arg for a in args.args), 60)})",
            line,
        )
    return tuple(names[2:-1]), uses_step


def _parse_statement(node: ast.stmt, text: str) -> Statement:
    line = node.lineno
    if not isinstance(node, ast.Assign):
        raise ProgramError("expected an assignment 'x = f(a, b)'", line)
    if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
        raise ProgramError("assign to exactly one variable name", line)
    target = node.targets[0].id
    value = node.value
    if isinstance(value, ast.Call):
        if not isinstance(value.func, ast.Name) or value.keywords:
            raise ProgramError("call a function by name with positional arguments", line)
        op = lookup(value.func.id)
        if op is None:
            raise ProgramError(f"unknown function {quote(value.func.id)}", line)
        raw_args = value.args
    elif isinstance(value, ast.BinOp) and type(value.op) in _BINARY_OPS:
        op = OPS[_BINARY_OPS[type(value.op)]]
        raw_args = [value.left, value.right]
    elif (
        isinstance(value, ast.UnaryOp)
        and isinstance(value.op, ast.USub)
        and isinstance(value.operand, ast.Name)
    ):
        op = OPS["negative"]
        raw_args = [value.operand]
    else:
        raise ProgramError("the right-hand side must be one function call, e.g. 'f(a, b)' or 'a * b'", line)
    if len(raw_args) != op.arity:
        raise ProgramError(f"{op.name} takes {op.arity} argument(s), got {len(raw_args)}", line)
    return Statement(target, op.name, tuple(_parse_arg(a, line, text) for a in raw_args))


def _parse_arg(node: ast.expr, line: int, text: str) -> Arg:
    if isinstance(node, ast.Name):
        return node.id
    sign = 1.0
    number = node
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        number = node.operand
    if isinstance(number, ast.Constant) and type(number.value) in (int, float):
        try:
            value = sign * float(number.value)
        except OverflowError:  # an int literal beyond the float range
            value = math.inf
        if not math.isfinite(value):
            raise ProgramError(f"constant {_elide(_written(node, text), 40)} is not finite", line)
        return value
    raise ProgramError(
        f"arguments must be variable names or numbers, got {quote(_written(node, text))} "
        "(one call per statement)",
        line,
    )


def _written(node: ast.expr, text: str) -> str:
    """The argument as written (only for errors: it scans the whole text)."""
    return ast.get_source_segment(text, node) or type(node).__name__


def _parse_return(node: ast.Return, state: tuple[str, ...]) -> str:
    line = node.lineno
    value = node.value
    items = value.elts if isinstance(value, ast.Tuple) else [value] if value is not None else []
    if not items or not all(isinstance(item, ast.Name) for item in items):
        raise ProgramError("return variable names: 'return update, <state...>'", line)
    names = [item.id for item in items]
    if tuple(names[1:]) != state:
        expected = ", ".join(("update", *state))
        raise ProgramError(
            "the return must list the update then the state slots in signature order "
            f"({expected}), got {_elide(', '.join(names), 60)}",
            line,
        )
    return names[0]
