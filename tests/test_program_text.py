"""Programs as text: exact round-trips, and every kind of error with its line number."""

from __future__ import annotations

import pickle
import sys
import textwrap

import pytest

from dsl import Kind, Program, ProgramError, Statement, library, parse
from dsl._program import MAX_PROGRAM_CHARACTERS, MAX_PROGRAM_STATEMENTS


@pytest.mark.parametrize("name", library.names())
def test_library_program_round_trips(name):
    program = library.load(name)
    text = program.to_text()
    assert parse(text) == program
    assert parse(text).to_text() == text
    assert text.startswith("def train(w, g, ")
    assert text.endswith(f"  return {', '.join(program.outputs)}\n")


def test_canonical_text_is_exact():
    text = (
        "def train(w, g, m, v, lr):\n"
        "  g2 = square(g)\n"
        "  m = interp(g, m, 0.9)\n"
        "  v = interp(g2, v, 0.999)\n"
        "  sqrt_v = sqrt(v)\n"
        "  update = m / sqrt_v\n"
        "  wd = w * 0.01\n"
        "  update = update + wd\n"
        "  lr = lr * 0.001\n"
        "  update = update * lr\n"
        "  return update, m, v\n"
    )
    program = parse(text)
    assert program.to_text() == text
    assert program == library.load("adamw_paper")
    assert program.inputs == ("w", "g", "m", "v", "lr")
    assert program.outputs == ("update", "m", "v")
    assert program.statements[0] == Statement("g2", "square", ("g",))
    assert program.statements[1] == Statement("m", "interp", ("g", "m", 0.9))


HAND_WRITTEN = textwrap.dedent(
    """\
    # A header comment, then a blank line.

    def train(w, g, m, lr, step):   # the signature may end with step
      # a comment line inside the body
      a = g + m
      b = a - -0.5          # a negative constant
      c = 2 * b             # an int constant becomes a float
      d = c / 3
      e2 = d ** 2           # ** is power
      f = -e2               # unary minus is negative
      m = interpolate(g, m, 0.9)
      n = clip_by_global_norm(m, 1)
      k = power(0.9, step)
      update = n * k
      update = update * lr
      return update, m
    """
)


def test_hand_written_program_parses_to_canonical_form():
    program = parse(HAND_WRITTEN)
    assert program.uses_step and program.state == ("m",)
    assert [(s.target, s.op, s.args) for s in program.statements] == [
        ("a", "add", ("g", "m")),
        ("b", "subtract", ("a", -0.5)),
        ("c", "multiply", (2.0, "b")),
        ("d", "divide", ("c", 3.0)),
        ("e2", "power", ("d", 2.0)),
        ("f", "negative", ("e2",)),
        ("m", "interp", ("g", "m", 0.9)),
        ("n", "clip", ("m", 1.0)),
        ("k", "power", (0.9, "step")),
        ("update", "multiply", ("n", "k")),
        ("update", "multiply", ("update", "lr")),
    ]
    assert all(type(a) is float for s in program.statements for a in s.args if not isinstance(a, str))
    text = program.to_text()
    assert "  b = a - -0.5\n" in text
    assert "  c = 2.0 * b\n" in text
    assert "  e2 = power(d, 2.0)\n" in text
    assert "  f = negative(e2)\n" in text
    assert "  m = interp(g, m, 0.9)\n" in text
    assert "  n = clip(m, 1.0)\n" in text
    assert "#" not in text
    assert parse(text) == program
    assert parse(text).to_text() == text
    # Source lines count comments and blank lines; the canonical text has none.
    assert program.line_of(0) == 5
    assert program.return_line() == 16
    assert parse(text).line_of(0) == 2


@pytest.mark.parametrize("value", [1e-16, 123456789.0, -3.0e-7, 0.1, 1.0 / 3.0, 2.5e38])
def test_float_constants_round_trip_exactly(value):
    program = Program(("m",), (Statement("m", "multiply", ("g", value)), Statement("update", "sign", ("m",))))
    assert parse(program.to_text()) == program


def test_programs_without_state_and_with_four_slots():
    no_state = parse("def train(w, g, lr):\n  update = g * lr\n  return update\n")
    assert no_state.state == () and no_state.outputs == ("update",)
    four = parse("def train(w, g, a, b, c, d, lr):\n  update = g * lr\n  return update, a, b, c, d\n")
    assert four.state == ("a", "b", "c", "d")
    assert parse(four.to_text()) == four


def test_equality_ignores_source_lines_and_replace_statements_keeps_signature():
    commented = parse("# c\n\ndef train(w, g, m, lr):\n  update = sign(g)\n  return update, m\n")
    plain = parse("def train(w, g, m, lr):\n  update = sign(g)\n  return update, m\n")
    assert commented == plain and hash(commented) == hash(plain)
    replaced = plain.replace_statements([Statement("update", "abs", ("g",))])
    assert replaced.state == plain.state and replaced.update == plain.update
    assert replaced.statements == (Statement("update", "abs", ("g",)),)


# ----------------------------------------------------------------------------- errors

SIGNATURE = "def train(w, g, m, lr):\n"


def body(*lines: str, returns: str = "update, m") -> str:
    return SIGNATURE + "".join(f"  {line}\n" for line in lines) + f"  return {returns}\n"


PARSE_ERRORS = [
    # (text, the line of the error, words the message must contain)
    (body("x = sign(g)", "update = foo(x)"), 3, "unknown function 'foo'"),
    (body("update = sign(g, m)"), 2, "sign takes 1 argument(s), got 2"),
    (body("update = interp(g, m)"), 2, "interp takes 3 argument(s), got 2"),
    (body("x = g + m", "update = x * y"), 3, "'y' is read before it is assigned"),
    (body("update = sign(g)", returns="update"), 3, "the return must list the update then the state slots"),
    (
        "def train(w, g, m, v, lr):\n  update = sign(g)\n  return update, v, m\n",
        3,
        "in signature order (update, m, v)",
    ),
    (body("x = sign(g)"), 3, "the returned update 'update' is never assigned"),
    (body("update = = sign(g)"), 2, "syntax error"),
    (body("x = sign(g)", "update = x *"), 3, "syntax error"),
    (body("update = g * 1e999"), 2, "not finite"),
    (body("update = g * -1e999"), 2, "not finite"),
    (body("update = g * 1E999"), 2, "constant 1E999 is not finite"),
    (body("update = g * -m"), 2, "got '-m'"),
    (body("update = sign(abs(g))"), 2, "arguments must be variable names or numbers"),
    (body("update = g + m * 2.0"), 2, "arguments must be variable names or numbers"),
    (body("update, x = g, m"), 2, "assign to exactly one variable name"),
    (body("update = sign(x=g)"), 2, "positional arguments"),
    (body("update = 'g' + m"), 2, "arguments must be variable names or numbers"),
    (body("if lr:", "  update = g"), 2, "expected an assignment"),
    (body("update = g"), 2, "the right-hand side must be one function call"),
    (
        "def train(g, w, lr):\n  update = g\n  return update\n",
        1,
        "the signature must be train(w, g, <state...>, lr[, step])",
    ),
    ("def train(w, g, m):\n  update = g\n  return update, m\n", 1, "the signature must be"),
    ("def train(w, g, m, lr=1.0):\n  update = sign(g)\n  return update, m\n", 1, "plain names only"),
    ("def train(w, g, *m, lr):\n  update = sign(g)\n  return update\n", 1, "plain names only"),
    (
        "def train(w, g, a, b, c, d, e, lr):\n  update = sign(g)\n  return update, a, b, c, d, e\n",
        1,
        "at most 4",
    ),
    (
        "def train(w, g, step, lr):\n  update = sign(g)\n  return update, step\n",
        1,
        "clashes with the input 'step'",
    ),
    (
        "def train(w, g, m, m, lr):\n  update = sign(g)\n  return update, m, m\n",
        1,
        "state slots must have distinct names",
    ),
    ("def optimize(w, g, lr):\n  update = sign(g)\n  return update\n", 1, "expected exactly one function"),
    (
        "# a header comment\n\ndef train(w, g, m, m, lr):\n  update = sign(g)\n  return update, m, m\n",
        3,
        "must have distinct names",
    ),
    ("x = 1\n" + body("update = sign(g)"), 1, "only 'def train(...)' may appear at the top level"),
    (SIGNATURE + "  update = sign(g)\n", 2, "must end with 'return update, <state...>'"),
    (body("update = sign(g)", returns="sign(g), m"), 3, "return variable names"),
]


@pytest.mark.parametrize("text,line,words", PARSE_ERRORS, ids=[words for _, _, words in PARSE_ERRORS])
def test_parse_error_names_problem_and_line(text, line, words):
    with pytest.raises(ProgramError) as info:
        parse(text)
    assert info.value.line == line
    assert words in info.value.problem
    assert str(info.value).startswith(f"line {line}: ")


TYPE_ERRORS = [
    (body("n = norm(lr)", "update = g * n"), 2, "norm reduces a tree, got a scalar"),
    (body("update = global_norm(g)"), 3, "the returned update must be a tree"),
    (body("update = norm(g)"), 3, "but 'update' is a tree of per-array scalars"),
    (body("update = sign(g)", "m = dot(g, m)"), 4, "the returned state slot 'm' must be a tree"),
    (body("update = clip(g, m)"), 2, "clip needs a scalar threshold, got a tree"),
    (body("x = clip(lr, 1.0)", "update = g * x"), 2, "clip needs a tree as its first argument"),
    (body("x = dot(g, lr)", "update = g * x"), 2, "dot needs trees, argument 2 is a scalar"),
    (body("x = cosine_sim(0.5, g)", "update = g * x"), 2, "cosine_sim needs trees, argument 1 is a scalar"),
    (body("update = lr * 2.0"), 3, "but 'update' is a scalar"),
]


@pytest.mark.parametrize("text,line,words", TYPE_ERRORS, ids=[words for _, _, words in TYPE_ERRORS])
def test_type_errors_surface_through_kinds(text, line, words):
    program = parse(text)  # structure is fine; the types are not
    with pytest.raises(ProgramError) as info:
        _ = program.kinds
    assert info.value.line == line
    assert words in info.value.problem


def test_kinds_of_a_valid_program():
    program = parse(body("n = norm(g)", "s = global_norm(g)", "x = g * n", "y = lr * s", "update = x * y"))
    assert program.kinds == (Kind.PER_ARRAY, Kind.SCALAR, Kind.TREE, Kind.SCALAR, Kind.TREE)


def test_constructed_programs_are_validated_too():
    with pytest.raises(ProgramError, match="unknown function 'frobnicate'"):
        Program(("m",), (Statement("update", "frobnicate", ("g",)),))
    with pytest.raises(ProgramError, match="read before it is assigned") as info:
        Program(("m",), (Statement("x", "sign", ("g",)), Statement("update", "add", ("x", "z"))))
    assert info.value.line == 3  # canonical text: the signature is line 1
    with pytest.raises(ProgramError, match="not finite"):
        Program(("m",), (Statement("update", "multiply", ("g", float("nan"))),))
    with pytest.raises(ProgramError, match="neither a variable nor a float"):
        Program(("m",), (Statement("update", "multiply", ("g", 2)),))
    with pytest.raises(ProgramError, match="state slots must have distinct names"):
        Program(("m", "m"), (Statement("update", "sign", ("g",)),))


def test_library_load_errors(tmp_path):
    with pytest.raises(KeyError, match="no library program 'nope'"):
        library.load("nope")
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(ProgramError, match="neither a program file nor a library program") as info:
        library.load_program(missing)
    assert info.value.source == repr(missing) and str(info.value).startswith(f"{missing!r}: ")
    bad = tmp_path / "bad.txt"
    bad.write_text(body("update = sign(q)"))
    with pytest.raises(ProgramError) as info:
        library.load_program(str(bad))
    assert info.value.line == 2
    assert str(info.value) == f"{bad}: line 2: variable 'q' is read before it is assigned"
    # It crosses process boundaries (Ray workers) whole.
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.problem, copy.line, copy.source, str(copy)) == (
        info.value.problem,
        2,
        str(bad),
        str(info.value),
    )
    assert library.load_program("lion") == library.load("lion")


@pytest.mark.parametrize(
    "content,line,words",
    [
        (b"# \xe9t\xe9\n" + body("update = sign(g)").encode(), 1, "not UTF-8 text (byte 0xe9 at offset 2)"),
        (body("update = sign(g)").encode() + b"\x89PNG\n", 4, "not UTF-8 text (byte 0x89"),
        (b"\0" * (4 * 100_000 + 1), None, "at most 100000 characters"),
    ],
    ids=["a Latin-1 comment", "a binary tail", "too large to read"],
)
def test_unreadable_program_files_are_program_errors_naming_the_file(tmp_path, content, line, words):
    file = tmp_path / "program.txt"
    file.write_bytes(content)
    with pytest.raises(ProgramError) as info:
        library.load_program(str(file))
    assert info.value.source == str(file) and info.value.line == line
    assert words in info.value.problem


def test_a_directory_is_not_a_program(tmp_path):
    with pytest.raises(ProgramError, match="neither a program file nor a library program"):
        library.load_program(str(tmp_path))


def test_windows_newlines_and_a_byte_order_mark_are_read(tmp_path):
    file = tmp_path / "windows.txt"
    file.write_bytes(b"\xef\xbb\xbf" + library.load("lion").to_text().replace("\n", "\r\n").encode())
    assert library.load_program(str(file)) == library.load("lion")


def test_a_broken_library_file_is_named_once(tmp_path, monkeypatch):
    (tmp_path / "broken.txt").write_text(body("update = sign(q)"))
    monkeypatch.setattr(library, "PROGRAMS_DIR", tmp_path)
    try:
        with pytest.raises(ProgramError) as info:
            library.load_program("broken")
    finally:
        library.load.cache_clear()
    message = str(info.value)
    assert message == f"{tmp_path / 'broken.txt'}: line 2: variable 'q' is read before it is assigned"
    assert message.count("broken.txt") == 1


# ----------------------------------------------------------------------------- hostile texts


def _traced_lines(function) -> int:
    """Python lines executed by ``function()``: a count of work that, unlike a time, is exact."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        count += event == "line"
        return tracer

    sys.settrace(tracer)
    try:
        function()
    finally:
        sys.settrace(None)
    return count


def _program_with_constants(n: int) -> str:
    return (
        SIGNATURE
        + "".join(f"  m = interp(g, m, {i / n!r})\n" for i in range(n))
        + "  update = m * -0.5\n  return update, m\n"
    )


def test_parsing_work_grows_linearly_with_the_number_of_constants():
    small, large = (_traced_lines(lambda n=n: parse(_program_with_constants(n))) for n in (100, 400))
    # 4x the constants: 4x the work when linear, 16x when each constant rescans the text.
    assert small > 1000  # the count sees the parser's Python code
    assert large < 5 * small


def test_size_caps():
    line = "  m = interp(g, m, 0.5)\n"
    at_cap = SIGNATURE + line * (MAX_PROGRAM_STATEMENTS - 1) + "  update = sign(m)\n  return update, m\n"
    assert len(parse(at_cap).statements) == MAX_PROGRAM_STATEMENTS
    with pytest.raises(ProgramError, match=f"at most {MAX_PROGRAM_STATEMENTS} statements") as info:
        parse(SIGNATURE + line + at_cap[len(SIGNATURE) :])
    assert info.value.line == MAX_PROGRAM_STATEMENTS + 2  # the first statement over the cap
    comment = "#" * 99 + "\n"
    comments = comment * (MAX_PROGRAM_CHARACTERS // 100)  # exactly the cap
    assert parse(comment * ((MAX_PROGRAM_CHARACTERS - len(at_cap)) // 100) + at_cap) == parse(at_cap)
    with pytest.raises(ProgramError, match=f"at most {MAX_PROGRAM_CHARACTERS} characters") as info:
        parse(comments + at_cap)
    assert info.value.line == MAX_PROGRAM_CHARACTERS // 100 + 1  # where the text goes over


DEEP = 100_000 // 2 - 100  # under the character cap
HOSTILE = {
    "309-digit int": (body("update = g * " + "9" * 309), 2, "is not finite"),
    "negative 309-digit int": (body("update = g * -" + "9" * 309), 2, "is not finite"),
    "5000-digit int": (body("update = g * 1" + "0" * 4999), 2, "syntax error: Exceeds the limit"),
    "deep unary minus": (body("x = sign(g)", "update = " + "- " * DEEP + "g"), 3, "nested too deeply"),
    "long sum": (body("x = sign(g)", "update = g" + " + g" * (DEEP // 2)), 3, "nested too deeply"),
    "long sum over lines": (
        body("x = sign(g)", "update = (g" + " +\n g" * (DEEP // 4) + ")"),
        3,
        "nested too deeply",
    ),
    "lone surrogate": (body("x = sign(g)", "update = g * \ud800"), 3, "'\\ud800' is not valid Unicode"),
    "lone surrogate in a comment": (body("update = sign(g)") + "# \udfff\n", 4, "not valid Unicode"),
    "null character": (body("update = sign(g)\0"), 2, "null character"),
    "decorator": ("@__import__('os').system('true')\n" + body("update = sign(g)"), 1, "decorators"),
    "parameter annotation": (
        "def train(w, g: __import__('os').system('true'), m, lr):\n  update = sign(g)\n  return update, m\n",
        1,
        "annotations are not allowed (on 'g')",
    ),
    "return annotation": (
        "def train(w, g, m,\n lr) -> __import__('os').system('true'):\n  update = sign(g)\n  return update, m\n",
        2,
        "return annotation",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_text_is_a_program_error_with_its_line(case):
    text, line, words = HOSTILE[case]
    with pytest.raises(ProgramError) as info:
        parse(text)
    assert info.value.line == line
    assert words in info.value.problem
    assert len(str(info.value)) < 200


HUGE = "a" * 50_000
ECHOING = [
    body(f"update = g * '{HUGE}'"),
    body(f"update = g * 1e{HUGE.replace('a', '9')}"),
    body(f"update = {HUGE}(g)"),
    body(f"update = g * {HUGE}"),
    body(f"{HUGE} = sign(g)"),
    body("update = sign(g)", returns=f"update, {HUGE}"),
    f"def train(w, g, {HUGE}):\n  update = sign(g)\n  return update\n",
    body("update = sign(g)", f"update = update(g, {HUGE})"),
    body(f"update = g * '{HUGE * 20}'"),  # over the character cap
]


@pytest.mark.parametrize("text", ECHOING, ids=range(len(ECHOING)))
def test_errors_quote_at_most_a_short_excerpt_of_the_input(text):
    with pytest.raises(ProgramError) as info:
        parse(text)
    assert len(str(info.value)) < 200, str(info.value)[:300]
    assert info.value.line is not None


def test_errors_of_constructed_programs_quote_a_short_excerpt():
    for build in (
        lambda: Program(("m",), (Statement("update", "add", ("g", HUGE)),)),
        lambda: Program(("m",), (Statement("update", HUGE, ("g",)),)),
        lambda: Program(("1" + HUGE,), (Statement("update", "sign", ("g",)),)),
        lambda: Program(("m",), (Statement("update", "sign", ("g",)),), update=HUGE),
    ):
        with pytest.raises(ProgramError) as info:
            build()
        assert len(str(info.value)) < 200
        assert "a ... a" in str(info.value)
