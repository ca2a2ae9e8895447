"""Joining a real Ray cluster, and starting a private local Ray, as a user would from the CLI.

The cluster test starts ``ray start --head`` in its own process group, temp dir, ports and
HOME (with its own token), from a Python environment that has the dependencies but not
this project, so the search runs only if the project's packages are shipped to the workers.
Only that process group (and any process under its temp dir) is stopped: ``ray stop``
would stop every cluster on the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

# Tests that start Ray run one after another on one xdist worker (--dist loadgroup): each
# cluster claims every core, and two at once would starve each other's workers.
pytestmark = pytest.mark.xdist_group("ray")

from search import RunDirectory  # noqa: E402
from search._ray_pool import RayEvaluator, WorkerPoolError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = """\
seed: 0
task: {name: mlp_digits_tiny}
search: {population_size: 3, tournament_size: 2}
budget: {evaluations: 4}
meta_validation: {task: null}
workers: {backend: ray, count: 2}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def driver_env(home: Path, **extra: str) -> dict:
    """This tree on the path; no Ray settings inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PYTHONPATH=str(REPO), HOME=str(home), **extra)
    return env


def symdisc(args: list[str], env: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "symdisc", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def write_token(home: Path) -> str:
    token = secrets.token_hex(32)  # the form of Ray's own tokens
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(token)
    return token


# -- no cluster needed -----------------------------------------------------------------


def test_an_address_where_nothing_listens_fails_at_once_in_one_paragraph(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG)
    port = free_port()  # closed again: nothing listens there
    started = time.monotonic()
    result = symdisc(
        ["run", "tiny.yaml", "--out", "run", "--address", f"127.0.0.1:{port}"],
        driver_env(tmp_path),
        tmp_path,
        timeout=90,
    )
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 60
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in result.stderr
    assert "Connection refused" in result.stderr and "ray start --head" in result.stderr
    assert len(result.stderr.splitlines()) <= 4, result.stderr
    assert not (tmp_path / "run").exists()  # no half-made run directory left behind
    assert "removed run, which held only its config.yaml" in result.stderr


@pytest.mark.parametrize(
    "address, message",
    [
        ("nonsense", "'nonsense' is not a Ray cluster address: give the HOST:PORT"),
        ("10.0.0.1:99999", "'10.0.0.1:99999' is not a Ray cluster address"),
    ],
)
def test_a_malformed_address_is_refused_before_connecting(address, message):
    from search._ray_cluster import RayConnectionError, join

    with pytest.raises(RayConnectionError, match=message):
        join(address)
    assert not ray.is_initialized()


def test_a_ray_client_address_without_ray_client_says_what_to_install():
    try:
        import grpc  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ray[client] is installed here")
    from search._ray_cluster import RayConnectionError, join

    with pytest.raises(RayConnectionError, match=r"needs Ray's client extra: pip install 'ray\[client\]=="):
        join("ray://127.0.0.1:10001")


@pytest.mark.slow  # starts a local Ray
def test_more_workers_than_the_local_ray_has_cpus_fail_at_once():
    assert not ray.is_initialized()
    count = (os.cpu_count() or 1) + 62
    started = time.monotonic()
    with pytest.raises(
        WorkerPoolError, match=rf"^{count} Ray workers need {count} CPUs \(1 per worker\), it has"
    ):
        RayEvaluator("mlp_digits_tiny", num_workers=count, startup_timeout=120)
    assert time.monotonic() - started < 100  # not the start-up timeout
    assert not ray.is_initialized()  # the Ray it started is shut down


def listening_addresses(root_pid: int) -> set[str]:
    """Local addresses of the TCP sockets that ``root_pid`` and its descendants listen on."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, stack = set(), [root_pid]
    while stack:
        pid = stack.pop()
        tree.add(pid)
        stack.extend(children.get(pid, []))
    inodes = set()
    for pid in tree:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(_decode_address(fields[1]))
    return addresses


def _decode_address(field: str) -> str:
    """/proc/net/tcp's hex address:port as an IP string (IPv4, or IPv6 in 4-byte little-endian words)."""
    hex_ip = field.split(":")[0]
    words = [bytes.fromhex(hex_ip[i : i + 8])[::-1] for i in range(0, len(hex_ip), 8)]
    raw = b"".join(words)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    return socket.inet_ntop(socket.AF_INET6, raw)


def is_loopback(address: str) -> bool:
    return (
        address.startswith("127.")
        or address in ("::1", "::ffff:127.0.0.1")
        or address.startswith("::ffff:127.")
    )


@pytest.mark.slow  # a whole (tiny) search on a local Ray
def test_a_local_run_ignores_a_stale_cluster_file_listens_on_loopback_and_is_quiet(tmp_path):
    """A ``ray start`` long gone left its address behind; --quiet prints nothing at all."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="sdq", dir="/tmp"))  # short: Ray's socket paths
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
        (tmp_path / "tiny.yaml").write_text(TINY_CONFIG)
        env = driver_env(tmp_path, RAY_TMPDIR=str(ray_tmp))
        run = subprocess.Popen(
            [sys.executable, "-m", "symdisc", "run", "tiny.yaml", "--out", "run", "--quiet"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        listening: set[str] = set()
        log = tmp_path / "run" / "individuals.jsonl"
        while run.poll() is None:  # once the workers have trained something, everything is up
            if log.exists() and log.read_text().strip():
                listening = listening_addresses(run.pid)
                break
            time.sleep(0.5)
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr
        assert stderr == "" and stdout == ""
        assert listening, "no listening socket seen"
        assert all(is_loopback(address) for address in listening), listening
        trained = [r for r in RunDirectory(tmp_path / "run").read_log() if not r["cache_hit"]]
        assert len(trained) == 4
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


# -- a real cluster --------------------------------------------------------------------


# The test keeps all traffic on loopback: Ray keeps a node on 127.0.0.1 only where clusters
# are "disabled", and a driver must resolve its own IP the same way to find that node.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class Cluster:
    """``ray start --head --block`` in its own process group, temp dir, ports and HOME."""

    def __init__(self, root: Path, python: Path, home: Path):
        self.root, self.port = root, free_port()
        self.address = f"127.0.0.1:{self.port}"
        ports = {
            "--port": self.port,
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
        }
        args = [str(python), "-m", "ray.scripts.scripts", "start", "--head", "--block"]
        args += [f"{flag}={port}" for flag, port in ports.items()]
        args += ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"]
        args += [f"--temp-dir={root / 'ray'}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "PYTHONPATH"}
        env.update(HOME=str(home), RAY_TMPDIR=str(root), **LOOPBACK_ONLY)
        self.env = env
        self.log = open(root / "head.log", "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            args, env=env, cwd=root, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (root / "head.log").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray start failed:\n{(root / 'head.log').read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left of it or runs under its temp dir."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30  # the killed ones' new parent reaps them
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.5)
        self.log.close()

    def leftovers(self) -> list[int]:
        """Live processes (not zombies) of the cluster's process group or under its temp dir."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                in_group = os.getpgid(int(entry.name)) == self.process.pid
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if state != "Z" and (in_group or str(self.root) in cmdline):
                pids.append(int(entry.name))
        return pids


def python_without_the_project(root: Path) -> Path:
    """A venv whose site-packages lists this environment's (not its .pth files, so not an
    editable install of the project) and nothing else."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    inner_site = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(inner_site, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.mark.slow  # starts a Ray cluster and runs a tiny search on it
def test_joining_a_token_authenticated_cluster_with_the_address_ray_start_printed():
    root = Path(tempfile.mkdtemp(prefix="sdc", dir="/tmp"))  # short: Ray's socket paths
    cluster = None
    try:
        home, stranger = root / "home", root / "stranger"
        write_token(home)
        stranger.mkdir()
        python = python_without_the_project(root)
        cluster_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cannot = subprocess.run(
            [str(python), "-c", "import search"], cwd=root, env=cluster_env, capture_output=True
        )
        assert cannot.returncode != 0  # the premise: the cluster's Python cannot import the project
        cluster = Cluster(root, python, home)
        (root / "tiny.yaml").write_text(TINY_CONFIG)

        # A machine without the cluster's token: one paragraph, at once.
        started = time.monotonic()
        refused = symdisc(
            ["run", "tiny.yaml", "--out", "refused", "--address", cluster.address],
            driver_env(stranger, **LOOPBACK_ONLY),
            root,
            timeout=120,
        )
        assert refused.returncode == 2
        assert f"the Ray cluster at {cluster.address} requires token authentication" in refused.stderr
        assert "InvalidAuthToken" not in refused.stderr and len(refused.stderr.splitlines()) <= 4
        assert time.monotonic() - started < 60
        assert not (root / "refused").exists()

        # The machine with the token (as after 'ray start' there), no RAY_AUTH_MODE: the search runs.
        joined = symdisc(
            ["run", "tiny.yaml", "--out", "joined", "--address", cluster.address, "--quiet"],
            driver_env(home, **LOOPBACK_ONLY),
            root,
            timeout=900,
        )
        assert joined.returncode == 0, joined.stderr[-3000:]
        records = RunDirectory(root / "joined").read_log()
        trained = [r for r in records if not r["cache_hit"]]
        assert len(trained) == 4
        assert {r["worker"] for r in trained} <= {"ray-0", "ray-1"}
        assert trained[0]["failure"] is None  # the warm start trained on the cluster
    finally:
        if cluster is not None:
            cluster.stop()
            assert cluster.leftovers() == []
        shutil.rmtree(root, ignore_errors=True)


def test_a_cluster_of_another_ray_or_python_version_is_refused_with_both_versions():
    import platform

    from search._ray_cluster import RayConnectionError, _check_versions

    python = platform.python_version()
    _check_versions("h:1", {"ray_version": ray.__version__, "python_version": python})  # the same: fine
    with pytest.raises(RayConnectionError) as error:
        _check_versions("h:1", {"ray_version": "2.9.3", "python_version": python})
    assert f"runs Ray 2.9.3, this machine Ray {ray.__version__}: Ray needs the same versions" in str(
        error.value
    )
    with pytest.raises(RayConnectionError, match=rf"runs Python 3\.1\.0, this machine Python {python}"):
        _check_versions("h:1", {"ray_version": ray.__version__, "python_version": "3.1.0"})
