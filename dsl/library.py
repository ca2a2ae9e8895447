"""The library of known optimizers written in the DSL, one ``programs/<name>.txt`` each."""

from __future__ import annotations

import functools
from pathlib import Path

from ._program import Program, ProgramError, parse

PROGRAMS_DIR = Path(__file__).parent / "programs"


def names() -> list[str]:
    """The library's program names, sorted."""
    return sorted(path.stem for path in PROGRAMS_DIR.glob("*.txt"))


def path(name: str) -> Path:
    """The file that holds library program ``name``."""
    file = PROGRAMS_DIR / f"{name}.txt"
    if not file.is_file():
        raise KeyError(f"no library program {name!r}; known: {', '.join(names())}")
    return file


@functools.cache
def load(name: str) -> Program:
    """Parse library program ``name``.

    Raises:
      KeyError: if there is no such program.
    """
    file = path(name)
    try:
        return parse(file.read_text())
    except ProgramError as error:
        raise ProgramError(f"{file.name}: {error.problem}", error.line) from None


def load_program(name_or_path: str) -> Program:
    """A program from a file path, or else from the library by name.

    Raises:
      FileNotFoundError: if it is neither an existing file nor a library name.
      ProgramError: if the text does not parse.
    """
    file = Path(name_or_path)
    if file.is_file():
        return parse(file.read_text())
    if name_or_path in names():
        return load(name_or_path)
    raise FileNotFoundError(
        f"{name_or_path!r} is neither a program file nor a library program ({', '.join(names())})"
    )
