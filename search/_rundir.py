"""A run directory: the resolved config, append-only logs, atomic checkpoints, the best program.

Layout::

    config.yaml            the resolved configuration (every default written out)
    individuals.jsonl      one line per individual, appended as it is recorded
    meta_validation.jsonl  one line per meta-validation of the current best
    checkpoint.json        the search state at some point, replaced atomically
    best.txt               the best program so far, with its fitness as a comment

Every log line carries ``seq``, one counter shared by both logs, so the order of events
is known. A checkpoint stores the ``seq`` it covers; on resume the lines after it are
replayed (``Search`` re-derives the same state from them), so nothing completed is lost
even after ``kill -9``. A last line torn by a kill is skipped when read and cut from
the file on resume; a damaged line anywhere else is an error naming the file and line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._config import Config, dump_config, load_config

CONFIG = "config.yaml"
INDIVIDUALS = "individuals.jsonl"
META_VALIDATION = "meta_validation.jsonl"
CHECKPOINT = "checkpoint.json"
BEST = "best.txt"


class RunDirectoryError(RuntimeError):
    """A run directory that cannot be created, read or resumed."""


class RunDirectory:
    """Files of one search run. Use ``create`` for a new run, ``open`` to resume one."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._files: dict[str, object] = {}

    @classmethod
    def create(cls, path: str | Path, config: Config) -> RunDirectory:
        """Make a new run directory holding ``config``.

        Raises:
          RunDirectoryError: if ``path`` exists and is not an empty directory.
        """
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunDirectoryError(f"{path} already exists and is not empty; use 'symdisc resume {path}'")
        try:
            path.mkdir(parents=True, exist_ok=True)
            _write_atomically(path / CONFIG, dump_config(config))
        except OSError as error:
            raise RunDirectoryError(f"{path}: cannot create the run directory ({error.strerror})") from None
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        """An existing run directory.

        Raises:
          RunDirectoryError: if it has no ``config.yaml``.
        """
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise RunDirectoryError(f"{path} is not a run directory (no {CONFIG})")
        return cls(path)

    def config(self) -> Config:
        """The run's configuration.

        Raises:
          ConfigError: if ``config.yaml`` is not a valid config (naming the key).
          RunDirectoryError: if it cannot be read.
        """
        try:
            return load_config(self.path / CONFIG)
        except OSError as error:
            raise RunDirectoryError(f"{self.path / CONFIG}: cannot read it ({error.strerror})") from None

    def check_writable(self) -> None:
        """Raise ``RunDirectoryError`` unless files can be created and appended to here."""
        probe = self.path / ".write-test"
        try:
            probe.write_bytes(b"")
            probe.unlink()
            for log in (INDIVIDUALS, META_VALIDATION):
                if (self.path / log).exists():
                    open(self.path / log, "ab").close()
        except OSError as error:
            raise RunDirectoryError(
                f"{self.path}: the run directory is not writable ({error.strerror}: {error.filename}); "
                "resuming appends to its logs"
            ) from None

    # -- logs ---------------------------------------------------------------------------

    def append(self, record: dict, log: str = INDIVIDUALS) -> None:
        """Append one JSON line to ``log`` and flush it to the OS (survives a killed process)."""
        try:
            file = self._files.get(log)
            if file is None:
                file = self._files[log] = open(self.path / log, "a", encoding="utf-8")
            file.write(json.dumps(record, allow_nan=False) + "\n")
            file.flush()
        except OSError as error:
            raise RunDirectoryError(f"{self.path / log}: cannot append ({error.strerror})") from None

    def records_after(self, seq: int) -> list[dict]:
        """Log records of both logs with ``seq`` greater than ``seq``, in ``seq`` order.

        Each record gets a ``_log`` key: the log it came from.
        """
        records = []
        for log in (INDIVIDUALS, META_VALIDATION):
            for record in self.read_log(log):
                if record["seq"] > seq:
                    record["_log"] = log
                    records.append(record)
        records.sort(key=lambda r: r["seq"])
        return records

    def read_log(self, log: str = INDIVIDUALS) -> list[dict]:
        """Every complete record of ``log``; a torn last line (from a killed process) is skipped.

        Raises:
          RunDirectoryError: naming the file and line, if a line before the last is not a
            JSON record.
        """
        file = self.path / log
        if not file.is_file():
            return []
        data = file.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        records = []
        for number, line in enumerate(complete.split(b"\n")[:-1], start=1):
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise RunDirectoryError(
                    f"{file}: line {number} is not a JSON record ({error}); the log is damaged"
                ) from None
            if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
                raise RunDirectoryError(
                    f"{file}: line {number} is not a log record (no seq); the log is damaged"
                )
            records.append(record)
        return records

    def cut_torn_lines(self) -> dict[str, int]:
        """Cut a torn last line (a write interrupted by a kill) from each log.

        Returns:
          {log: bytes cut} for the logs that had one.
        """
        cut = {}
        for log in (INDIVIDUALS, META_VALIDATION):
            file = self.path / log
            if not file.is_file():
                continue
            data = file.read_bytes()
            complete = data.rfind(b"\n") + 1
            if complete < len(data):
                try:
                    with open(file, "r+b") as handle:
                        handle.truncate(complete)
                except OSError as error:
                    raise RunDirectoryError(
                        f"{file}: cannot cut its torn last line ({error.strerror})"
                    ) from None
                cut[log] = len(data) - complete
        return cut

    # -- checkpoints --------------------------------------------------------------------

    def write_checkpoint(self, state: dict) -> None:
        """Replace ``checkpoint.json`` atomically (a temp file, then ``os.replace``)."""
        self._write(CHECKPOINT, json.dumps(state, allow_nan=False))

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).is_file()

    def read_checkpoint(self) -> dict | None:
        """The last checkpoint, or None if there is none.

        Raises:
          RunDirectoryError: if it is damaged (not a JSON object).
        """
        file = self.path / CHECKPOINT
        if not file.is_file():
            return None
        try:
            state = json.loads(file.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RunDirectoryError(f"{file} is damaged ({error})") from None
        if not isinstance(state, dict):
            raise RunDirectoryError(f"{file} is damaged (not a JSON object)")
        return state

    def write_best(self, program_text: str, header: str) -> None:
        lines = "".join(f"# {line}\n" for line in header.splitlines())
        self._write(BEST, lines + program_text)

    def _write(self, name: str, text: str) -> None:
        try:
            _write_atomically(self.path / name, text)
        except OSError as error:
            raise RunDirectoryError(f"{self.path / name}: cannot write ({error.strerror})") from None

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
