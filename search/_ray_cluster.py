"""Starting a private local Ray, or joining a running Ray cluster with checks that explain failure.

Joining (``join``) takes the address that ``ray start --head`` prints (``host:port``, the
cluster's GCS), ``auto`` (a cluster started on this machine), or ``ray://host:port`` (Ray
Client, which needs ``ray[client]``). Before ``ray.init`` it checks what can be checked at
once: the form of the address, that something listens there, that the cluster accepts this
machine's authentication token, and that its Ray and Python versions are this process's.
Each failure is one ``RayConnectionError`` paragraph that says why and what to do, instead
of Ray's retry log lines.

Ray's token authentication: ``ray start --head`` enables it when the machine has a token
(``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``, which any
local ``ray.init`` creates), but a driver given an explicit address sends the token only
when ``RAY_AUTH_MODE=token`` is set. When the variable is unset, ``join`` asks the cluster
without a token first and turns token mode on only if the cluster wants one and this
machine has it, so the address ``ray start`` printed is enough either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import socket
import tempfile
from collections.abc import Iterator

import ray

AUTH_MODE_ENV = "RAY_AUTH_MODE"
CONNECT_TIMEOUT = 5.0  # seconds for the TCP check and the GCS probe: a reachable GCS answers in ms
DOCS = "docs/cluster.md"


class RayConnectionError(RuntimeError):
    """Ray cannot be started or the cluster cannot be joined; the message says why and what to do."""


def start_local(num_cpus: int, runtime_env: dict | None = None) -> None:
    """Start a private Ray instance for this process, on loopback, with no dashboard.

    ``address="local"`` never attaches to a cluster another ``ray start`` left recorded in
    ``/tmp/ray/ray_current_cluster``. Token authentication stays on (Ray's default for a new
    local instance); setting ``RAY_AUTH_MODE`` explicitly only silences Ray's notice of it.
    """
    if AUTH_MODE_ENV not in os.environ:
        _set_token_mode()
    with _loopback_node_ip():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            runtime_env=runtime_env,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )


@contextlib.contextmanager
def _loopback_node_ip() -> Iterator[None]:
    """Make the new node's IP 127.0.0.1, so its servers (GCS, raylet, workers) bind to loopback.

    Ray turns a ``_node_ip_address`` of 127.0.0.1 into the machine's outward IP unless
    clusters are disabled, as on macOS and Windows (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``,
    read once at import, hence the attribute). Once the node runs it answers with its own IP.
    """
    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray without it: the node takes Ray's default IP
        yield
        return
    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if before is None:
        yield
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def join(address: str, runtime_env: dict | None = None) -> None:
    """Connect this process to the Ray cluster at ``address`` (see the module docstring).

    ``runtime_env`` is the job's (``ray.init(runtime_env=...)``).

    Raises:
      RayConnectionError: one paragraph: what failed, why, and what to do.
    """
    address = address.strip()
    if address.startswith("ray://"):
        _check_ray_client(address)
    elif address != "auto":
        host, port = _split_address(address)
        _check_listening(address, host, port)
        _probe_gcs(address)
    try:
        ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as error:  # whatever ray.init raises, said as one paragraph
        reason = " ".join(str(error).split())[:500]
        raise RayConnectionError(
            f"could not join the Ray cluster at {address}: {reason}. Check that the cluster runs "
            f"(ray status on its head node) and see {DOCS}."
        ) from None


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayConnectionError(
            f"{address!r} is not a Ray cluster address: give the HOST:PORT that 'ray start --head' "
            f"printed (e.g. 10.0.0.5:6379), 'auto' for a cluster started on this machine, or "
            f"ray://HOST:10001 for Ray Client (see {DOCS})."
        )
    return host, int(port)


def _check_listening(address: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise RayConnectionError(
            f"cannot reach a Ray cluster at {address}: connecting to {host} port {port} failed "
            f"({reason}). Start the head node there with 'ray start --head --port={port}', or give "
            f"the address it printed; check that no firewall blocks the port (see {DOCS})."
        ) from None


def _check_ray_client(address: str) -> None:
    try:
        import grpc  # noqa: F401 (Ray Client's transport; only ray[client] installs it)
    except ImportError:
        raise RayConnectionError(
            f"{address} is a Ray Client address, which needs Ray's client extra: "
            f"pip install 'ray[client]=={ray.__version__}'. Without it, join with the GCS address "
            f"that 'ray start --head' printed (HOST:6379 by default) from a machine that can reach "
            f"the cluster's nodes (see {DOCS})."
        ) from None


def _have_token() -> bool:
    try:
        from ray._raylet import AuthenticationTokenLoader
    except ImportError:  # a Ray without token authentication
        return False
    return AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)


def _set_token_mode() -> None:
    """``RAY_AUTH_MODE=token`` for this process (as Ray itself does) and the Ray processes it starts."""
    os.environ[AUTH_MODE_ENV] = "token"
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication ignores the variable
        return
    Config.initialize("")  # Ray caches its config at import; this re-reads RAY_AUTH_MODE
    AuthenticationTokenLoader.instance().reset_cache()


def _probe_gcs(address: str) -> None:
    """Ask the cluster's GCS for its id and versions, with Ray's C++ log lines kept off the terminal.

    A cluster that refuses a request without a token gets this machine's token, if it has
    one and ``RAY_AUTH_MODE`` is unset: token mode is turned on only for a cluster that
    uses it (a driver in token mode cannot serve the workers of a cluster without it).
    """
    try:
        from ray._raylet import InnerGcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # an older Ray: ray.init will tell
        return

    def ask() -> bytes | None:
        with _stderr_silenced():
            client = InnerGcsClient.standalone(address, None, int(CONNECT_TIMEOUT * 1000))
            return client.internal_kv_get(b"CLUSTER_METADATA", b"cluster", CONNECT_TIMEOUT)

    token = os.environ.get(AUTH_MODE_ENV, "").lower() == "token"
    try:
        try:
            metadata = ask()
        except AuthenticationError:
            if token or AUTH_MODE_ENV in os.environ or not _have_token():
                raise
            _set_token_mode()
            token = True
            metadata = ask()
    except AuthenticationError:
        if token:
            raise RayConnectionError(
                f"the Ray cluster at {address} refused this machine's authentication token: it was "
                f"started with another one. Copy the head node's token (ray get-auth-token, run there) "
                f"into ~/.ray/auth_token here, or set RAY_AUTH_TOKEN to it (see {DOCS})."
            ) from None
        mode = f" (RAY_AUTH_MODE={os.environ[AUTH_MODE_ENV]} here)" if AUTH_MODE_ENV in os.environ else ""
        raise RayConnectionError(
            f"the Ray cluster at {address} requires token authentication and this machine has no "
            f"token{mode}. Copy the head node's token (ray get-auth-token, run there) into ~/.ray/auth_token "
            f"here, or set RAY_AUTH_TOKEN to it (see {DOCS})."
        ) from None
    except Exception as error:  # an RpcError: something listens there, but no GCS answers
        reason = " ".join(str(error).split())[:300]
        raise RayConnectionError(
            f"no Ray cluster answers at {address} ({reason}): is it the address 'ray start --head' "
            f"printed (its GCS port, 6379 by default), and is that cluster up (see {DOCS})?"
        ) from None
    if metadata:
        _check_versions(address, json.loads(metadata))


def _check_versions(address: str, cluster: dict) -> None:
    """Ray refuses a driver whose Ray or Python version differs from the cluster's: say so first."""
    ours = {"ray_version": ray.__version__, "python_version": platform.python_version()}
    if os.environ.get("RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL") == "minor":
        cluster = {**cluster, "python_version": cluster.get("python_version", "").rsplit(".", 1)[0]}
        ours["python_version"] = ours["python_version"].rsplit(".", 1)[0]
    differ = [key for key in ours if cluster.get(key) is not None and cluster[key] != ours[key]]
    if differ:
        theirs = ", ".join(f"{key.split('_')[0].title()} {cluster[key]}" for key in differ)
        mine = ", ".join(f"{key.split('_')[0].title()} {ours[key]}" for key in differ)
        raise RayConnectionError(
            f"the Ray cluster at {address} runs {theirs}, this machine {mine}: Ray needs the same "
            f"versions on every node and the driver. Install the cluster's versions here (or "
            f"restart the cluster with these), see {DOCS}."
        )


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 (where Ray's C++ code logs) to a scratch file for the block."""
    with tempfile.TemporaryFile() as scratch:
        saved = os.dup(2)
        try:
            os.dup2(scratch.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
