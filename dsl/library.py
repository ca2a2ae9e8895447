"""The library of known optimizers written in the DSL, one ``programs/<name>.txt`` each."""

from __future__ import annotations

import functools
from pathlib import Path

from ._program import MAX_PROGRAM_CHARACTERS, Program, ProgramError, parse, quote

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
      ProgramError: naming the file, if it does not parse.
    """
    return _read_program(path(name))


def load_program(name_or_path: str) -> Program:
    """A program from a file path, or else from the library by name.

    Raises:
      ProgramError: naming the file (or ``name_or_path``) when it is neither an existing
        file nor a library name, cannot be read, is not UTF-8 text, or does not parse.
    """
    file = Path(name_or_path)
    if file.is_file():
        return _read_program(file)
    if name_or_path in names():
        return load(name_or_path)
    raise ProgramError(
        f"neither a program file nor a library program ({', '.join(names())})",
        source=quote(name_or_path, 120),
    )


def _read_program(file: Path) -> Program:
    """Parse the program in ``file`` (UTF-8, an optional byte-order mark).

    Raises:
      ProgramError: naming the file, for any reason it does not give a program.
    """
    source = str(file)
    # Enough bytes for MAX_PROGRAM_CHARACTERS characters of UTF-8, and one more.
    limit = 4 * MAX_PROGRAM_CHARACTERS + 1
    try:
        with file.open("rb") as stream:
            data = stream.read(limit)
    except OSError as error:
        raise ProgramError(f"cannot be read: {error.strerror or error}", source=source) from None
    if len(data) == limit:
        raise ProgramError(f"a program has at most {MAX_PROGRAM_CHARACTERS} characters", source=source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ProgramError(
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})", line, source
        ) from None
    try:
        return parse(text.replace("\r\n", "\n").replace("\r", "\n"))  # universal newlines
    except ProgramError as error:
        raise error.in_source(source) from None
