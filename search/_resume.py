"""Resuming a run: the state to trust, the fitness cache, and the replay of the log lines after it.

A checkpoint is trusted only if it can be read and covers no more of the logs than they
hold; otherwise the whole log is replayed from the initial state (nothing is lost: the
log holds every completed evaluation). The fitness cache is rebuilt from the log lines
the state covers; the lines after it are replayed: ``Search`` runs its very code again,
with the log (``Replay``) supplying the completions instead of the evaluator, and every
event it regenerates must match its logged line.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from ._cache import FitnessCache
from ._evaluator import Completed
from ._records import record_summary, result_from_dict
from ._rundir import CHECKPOINT, INDIVIDUALS, RunDirectory, RunDirectoryError
from ._state import Pending, SearchError, SearchState


class Replay:
    """The log lines a resumed search re-derives, in ``seq`` order (false once all are done).

    Args:
      records: the lines (``RunDirectory.records_after``: each with its ``_log``).
      path: the run directory, for error messages.
    """

    def __init__(self, records: list[dict], path: Path):
        self._records = deque(records)
        self._path = path

    def __bool__(self) -> bool:
        return bool(self._records)

    def capacity(self, default: int) -> int:
        """The capacity the next line was logged with (``default`` for a log from before it was logged)."""
        return self._records[0].get("capacity", default)

    def check(self, record: dict, log: str) -> None:
        """The search regenerated ``record`` for ``log``: it must be the next logged line.

        Raises:
          SearchError: if it is not (the config or the code changed since the line was written).
        """
        expected = self._records.popleft()
        same = expected["_log"] == log and expected["seq"] == record["seq"]
        if log == INDIVIDUALS:
            same = same and all(expected[k] == record[k] for k in ("id", "hash", "cache_hit", "program"))
        else:
            same = same and expected["individual"] == record["individual"]
        if not same:
            raise SearchError(
                f"{self._path}: log line seq {expected['seq']} does not match the replayed search "
                f"(expected {record_summary(expected)}, replay gave {record_summary(record)}); "
                "was the config changed?"
            )

    def next_completion(self, in_flight: dict[int, Pending]) -> Completed:
        """The completion the next line records, in place of the evaluator's.

        Raises:
          SearchError: if that line is not the completion of a job in flight.
        """
        record = self._records[0]
        job_id = record["id"] if record["_log"] == INDIVIDUALS else record["job"]
        if job_id not in in_flight or record.get("cache_hit") is not None:
            raise SearchError(
                f"{self._path}: log line seq {record['seq']} is not the completion of a job in flight"
            )
        return Completed(job_id, result_from_dict(record), record["worker"])


def resume_point(
    rundir: RunDirectory, initial: SearchState
) -> tuple[SearchState, FitnessCache, list[dict], list[str]]:
    """Read ``rundir`` for a resume; repair a torn last line of each log.

    Args:
      rundir: the run directory.
      initial: the state before the warm start (used if no checkpoint can be trusted).

    Returns:
      (the state to start from, the cache it had, the log records after it in ``seq``
      order, notes for the user on what was repaired or not trusted).

    Raises:
      RunDirectoryError: if the run directory is not writable or a log line before the
        last is damaged.
    """
    rundir.check_writable()
    notes = [
        f"{rundir.path / log}: cut a torn last line ({size} bytes; a write interrupted by a kill)"
        for log, size in rundir.cut_torn_lines().items()
    ]
    records = rundir.records_after(0)
    last_seq = records[-1]["seq"] if records else 0
    state = _read_checkpoint(rundir, notes)
    if state is not None and state.seq > last_seq:
        notes.append(
            f"{rundir.path / CHECKPOINT} covers the logs up to seq {state.seq}, but they end at "
            f"seq {last_seq}; replaying the whole log from the start to redo what was lost"
        )
        state = None
    state = state or initial
    cache = FitnessCache.from_log(r for r in records if r["seq"] <= state.seq and r["_log"] == INDIVIDUALS)
    return state, cache, [r for r in records if r["seq"] > state.seq], notes


def _read_checkpoint(rundir: RunDirectory, notes: list[str]) -> SearchState | None:
    """The checkpoint's state; None (and a note) if there is none that can be trusted."""
    try:
        data = rundir.read_checkpoint()
        return None if data is None else SearchState.from_dict(data)
    except RunDirectoryError as error:
        notes.append(f"{error}; replaying the whole log from the start instead")
    except (KeyError, TypeError, ValueError) as error:
        notes.append(
            f"{rundir.path / CHECKPOINT} is not a checkpoint of this version ({type(error).__name__}: "
            f"{error}); replaying the whole log from the start instead"
        )
    return None
