"""The Ray backend of ``Evaluator``: long-lived actors, each holding its compiled proxy tasks.

Every actor (``ProxyWorker``) builds its proxy task once and keeps it, so whatever the task
caches (data on device, jitted model functions) is paid for once per worker, not once per
candidate. Programs travel as text and come back as ``Result`` dataclasses.

The driver keeps at most ``max_in_flight_per_worker`` calls queued on each actor (two by
default: while an actor trains one candidate the next one is already waiting there, so
it never idles on a round trip) and collects them with ``ray.wait``.

A worker that dies (killed, out of memory, crashed) is replaced by a fresh actor and its
jobs are re-queued, so the caller still gets exactly one ``Completed`` per job. A
candidate that fails (NaN, divergence, an exception in training) is an ordinary failed
``Result``, made inside the worker by ``evaluate_safely`` exactly as in-process.

The project's packages (``dsl``, ``proxy_tasks``, ``search``) travel to the workers in the
job's runtime environment (Ray's ``py_modules``, ``project_runtime_env``), so a cluster
node needs only the dependencies, not the project (docs/cluster.md). An evaluator that
starts or joins Ray sets it; a caller that initializes Ray itself passes it to ``ray.init``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

import dsl
import proxy_tasks
import search
from dsl import Program, parse

from ._evaluator import Completed, evaluate_seeds, get_task, job_task
from ._ray_cluster import join, start_local

# One compute thread per JAX process: each actor owns one CPU (``num_cpus=1``), and XLA's
# default thread pool would otherwise make the workers fight over every core.
# Measured by scripts/bench_search.py --compare-env: with XLA's default threads two workers
# were no faster than one on 2 cores; single-threaded, 1.4x (docs/performance.md, Search).
SINGLE_THREAD_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


def project_runtime_env() -> dict:
    """Ray's job runtime environment that ships the project's packages to every worker.

    Ray zips each package directory and uploads it once per content hash; a worker imports
    the packages from its unpacked copy, ahead of anything installed on its node.
    """
    packages = [str(Path(package.__file__).parent) for package in (dsl, proxy_tasks, search)]
    return {"py_modules": packages, "excludes": ["__pycache__", "*.pyc"]}


# While workers start, a note on what is awaited this often (seconds).
_WAIT_NOTE_EVERY = 15.0


@ray.remote
class ProxyWorker:
    """A Ray actor that trains candidates on proxy tasks it builds once and keeps.

    Args:
      task_name: the main proxy task, built at construction.
      stall: None, or a ``proxy_tasks.StallRule`` for the main task's runs only.
    """

    def __init__(self, task_name: str, stall=None):
        self._main_task = task_name
        self._stall = stall
        get_task(task_name, stall)  # built here, so ready() reports a worker that can train

    def ready(self) -> int:
        """The worker's process id, once its main task is built."""
        return os.getpid()

    def evaluate(self, program_text: str, seeds: tuple[int, ...], task_name: str | None = None):
        """Train ``program_text`` with each of ``seeds`` on ``task_name`` (None: the main task); the mean."""
        return evaluate_seeds(job_task(task_name, self._main_task, self._stall), parse(program_text), seeds)


@dataclass
class _Job:
    job_id: int
    program_text: str
    seeds: tuple[int, ...]
    task_name: str | None


@dataclass
class _Slot:
    """One worker position: its current actor and the jobs queued on it."""

    index: int
    actor: Any
    generation: int = 0
    in_flight: int = 0

    @property
    def name(self) -> str:
        return f"ray-{self.index}" if self.generation == 0 else f"ray-{self.index}.{self.generation}"


class WorkerPoolError(RuntimeError):
    """The Ray workers cannot run: a task cannot be built, or workers keep dying."""


class RayEvaluator:
    """Evaluates candidates on a pool of Ray actors (see the module docstring).

    Args:
      task_name: the main proxy task (``proxy_tasks.get(task_name)``), built by every actor.
      num_workers: number of actors; default: the CPUs Ray reports available (divided by
        ``num_gpus`` GPUs per actor when that is set).
      address: a running Ray cluster to join (``HOST:PORT`` as ``ray start --head`` prints
        it, ``auto``, or ``ray://HOST:PORT``; see ``_ray_cluster.join``); None starts a
        private local instance sized to this machine unless Ray is already initialized.
      max_in_flight_per_worker: calls queued on each actor at once; ``capacity`` is
        ``num_workers * max_in_flight_per_worker``.
      num_gpus: GPUs per actor (0: CPU only). The device is configuration, not code.
      env_vars: environment of the worker processes; default ``SINGLE_THREAD_ENV``.
      max_consecutive_deaths: give up (``WorkerPoolError``) after this many worker deaths
        with no job completed in between; default ``3 * num_workers``.
      startup_timeout: seconds to wait for the first actors to be scheduled and to build
        their task (a cluster without the resources would otherwise wait forever).
      notify: called with a line of text when something takes a while (joining, workers
        still starting and why); None: silent.
      stall: None, or a ``proxy_tasks.StallRule`` for the main task's runs; a job that
        names its task (meta-validation, the funnel) always trains to the end.

    Raises:
      WorkerPoolError: if a worker cannot build ``task_name``, the workers do not start
        within ``startup_timeout``, or a Ray this evaluator started has too few CPUs or GPUs.
      RayConnectionError: if Ray cannot be started or the cluster cannot be joined.
    """

    def __init__(
        self,
        task_name: str,
        num_workers: int | None = None,
        address: str | None = None,
        max_in_flight_per_worker: int = 2,
        num_gpus: float = 0,
        env_vars: dict[str, str] | None = None,
        max_consecutive_deaths: int | None = None,
        startup_timeout: float = 600.0,
        notify: Callable[[str], None] | None = None,
        stall=None,
    ):
        if max_in_flight_per_worker < 1:
            raise ValueError(f"max_in_flight_per_worker must be >= 1, got {max_in_flight_per_worker}")
        if num_workers is not None and num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.task_name = task_name
        self.stall = stall
        self._ray_started_as: str | None = None  # "local" or "joined" when this evaluator started it
        self._closed = False
        self._slots: list[_Slot] = []
        self._queue: deque[_Job] = deque()
        self._in_flight: dict[ray.ObjectRef, tuple[_Job, _Slot, Any]] = {}
        self._notify = notify or (lambda message: None)
        if not ray.is_initialized():
            self._start_ray(address)
        try:  # whatever fails from here on, the actors started so far and our Ray go with it
            self.num_workers = num_workers or _default_num_workers(num_gpus)
            self.capacity = self.num_workers * max_in_flight_per_worker
            self._depth = max_in_flight_per_worker
            self._actor_options = {
                "num_cpus": 1,
                "num_gpus": num_gpus,
                "runtime_env": {"env_vars": dict(SINGLE_THREAD_ENV if env_vars is None else env_vars)},
            }
            self._check_resources()
            self._max_deaths = max_consecutive_deaths or 3 * self.num_workers
            self._deaths_since_success = 0
            self.deaths = 0
            self._slots = [_Slot(i, self._new_actor()) for i in range(self.num_workers)]
            self._wait_until_ready(startup_timeout)
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------------------------

    def _start_ray(self, address: str | None) -> None:
        if address is None:
            start_local(os.cpu_count() or 1, project_runtime_env())
            self._ray_started_as = "local"
        else:
            self._notify(f"joining the Ray cluster at {address}")
            join(address, project_runtime_env())
            self._ray_started_as = "joined"

    def _check_resources(self) -> None:
        """Refuse at once what a Ray of fixed size cannot schedule; on a cluster, say what is missing."""
        total = ray.cluster_resources()
        missing = []
        for resource, per_worker in (("CPU", 1), ("GPU", self._actor_options["num_gpus"])):
            need = per_worker * self.num_workers
            if need > total.get(resource, 0):
                missing.append(
                    f"{need:g} {resource}s ({per_worker:g} per worker), it has {total.get(resource, 0):g}"
                )
        if not missing:
            return
        what = f"{self.num_workers} Ray workers need " + " and ".join(missing)
        if self._ray_started_as == "local":
            raise WorkerPoolError(
                f"{what} on this machine: lower workers.count (null: one per CPU)"
                + (" or workers.gpus_per_worker" if self._actor_options["num_gpus"] else "")
            )
        self._notify(f"{what} now; waiting for nodes to join (an autoscaler may add them)")

    def _new_actor(self):
        return ProxyWorker.options(**self._actor_options).remote(self.task_name, self.stall)

    def _wait_until_ready(self, timeout: float) -> None:
        pending = [slot.actor.ready.remote() for slot in self._slots]
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                done, pending = ray.wait(
                    pending, num_returns=len(pending), timeout=min(remaining, _WAIT_NOTE_EVERY)
                )
                ray.get(done)  # raises the error of a worker that could not build its task
                if not pending:
                    return
                if remaining <= _WAIT_NOTE_EVERY:
                    raise GetTimeoutError
                self._notify(
                    f"{len(pending)} of {self.num_workers} Ray workers still starting (building "
                    f"{self.task_name!r}); free now: {_describe(ray.available_resources())}; "
                    f"giving up in {deadline - time.monotonic():.0f} s"
                )
        except GetTimeoutError:
            free = ray.available_resources()
            raise WorkerPoolError(
                f"{self.num_workers} Ray worker(s) for {self.task_name!r} did not start within {timeout:g} s "
                f"(each needs {self._actor_options['num_cpus']} CPU and {self._actor_options['num_gpus']} GPU; "
                f"free: {free})"
            ) from None
        except RayActorError as error:
            reason = str(error).strip().splitlines()[-1]  # the worker's exception, after its traceback
            raise WorkerPoolError(
                f"a Ray worker could not build proxy task {self.task_name!r}: {reason}"
            ) from error

    @property
    def actors(self) -> list:
        """The current actor of each worker slot (for inspection and fault-injection tests)."""
        return [slot.actor for slot in self._slots]

    # -- Evaluator -----------------------------------------------------------------------

    def submit(
        self, job_id: int, program: Program, seeds: tuple[int, ...], task_name: str | None = None
    ) -> None:
        """Queue ``program`` for training with each of ``seeds`` on ``task_name`` (None: main task)."""
        if self._closed:
            raise RuntimeError("RayEvaluator.submit after close()")
        self._queue.append(_Job(job_id, program.to_text(), seeds, task_name))
        self._dispatch()

    def wait(self) -> list[Completed]:
        """Block until at least one job is done; return every newly done job ([] if none is left)."""
        while True:
            self._dispatch()
            if not self._in_flight:
                return []
            refs = list(self._in_flight)
            ready, _ = ray.wait(refs, num_returns=1)
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # everything done by now
            done = []
            for ref in ready:
                job, slot, actor = self._in_flight.pop(ref)
                if slot.actor is actor:
                    slot.in_flight -= 1
                try:
                    result = ray.get(ref)
                except RayActorError as error:
                    self._replace(slot, actor, error)
                    self._queue.appendleft(job)
                    continue
                done.append(Completed(job.job_id, result, slot.name))
            if done:
                self._deaths_since_success = 0
                return done

    def close(self) -> None:
        """Kill the actors; shut Ray down if this evaluator started it. Harmless twice."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            _kill(slot.actor)
        self._queue.clear()
        self._in_flight.clear()
        if self._ray_started_as:
            ray.shutdown()
            self._ray_started_as = None

    def __enter__(self) -> RayEvaluator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Move queued jobs onto the least busy actors, at most ``_depth`` per actor."""
        while self._queue:
            slot = min(self._slots, key=lambda s: s.in_flight)
            if slot.in_flight >= self._depth:
                return
            job = self._queue.popleft()
            ref = slot.actor.evaluate.remote(job.program_text, job.seeds, job.task_name)
            self._in_flight[ref] = (job, slot, slot.actor)
            slot.in_flight += 1

    def _replace(self, slot: _Slot, dead_actor, error: Exception) -> None:
        """Give ``slot`` a fresh actor, once per death (its other jobs fail the same way)."""
        if slot.actor is not dead_actor:
            return
        self.deaths += 1
        self._deaths_since_success += 1
        if self._deaths_since_success > self._max_deaths:
            raise WorkerPoolError(
                f"{self._deaths_since_success} Ray workers died with no job completed in between; "
                f"last error: {error}"
            )
        _kill(dead_actor)
        # Jobs still queued on the dead actor will fail too and be re-queued then.
        slot.actor = self._new_actor()
        slot.generation += 1
        slot.in_flight = 0


def _default_num_workers(num_gpus: float) -> int:
    available = ray.available_resources()
    workers = int(available.get("CPU", 1))
    if num_gpus:
        gpus = available.get("GPU", 0)
        if gpus < num_gpus:
            raise WorkerPoolError(f"num_gpus={num_gpus} per worker, but the Ray cluster has {gpus} GPUs free")
        workers = min(workers, int(gpus / num_gpus))
    return max(1, workers)


def _describe(resources: dict) -> str:
    shown = {name: value for name, value in resources.items() if name in ("CPU", "GPU")}
    return ", ".join(f"{value:g} {name}" for name, value in shown.items()) or "nothing"


def _kill(actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already dead or Ray already down: nothing left to release
        pass
