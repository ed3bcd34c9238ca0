"""The Ray executor of a sweep: runs on the nodes of a cluster, results in the driver's folder.

No file system is assumed to be shared between the driver (the machine that runs
``tensorrnn compare``) and the nodes. Each grid point is one Ray task that

1. receives the run's files from the driver's run folder (``config.json``,
   ``metrics.jsonl``, ``checkpoint.pt``: a resumed run continues from its last
   checkpoint on whichever node it lands),
2. trains in a temporary folder of the node it runs on (the node loads the data
   set itself: a node without it fails the run with a message naming the node),
3. returns every file the run wrote (``config.json``, ``metrics.jsonl``,
   ``checkpoint.pt``, ``error.json``, ``result.json``) through Ray's object store.

The driver writes them into its own run folder with :mod:`tensorrnn.atomic`,
``result.json`` last, so ``results.csv``, the report and a later resume need that
folder only. A run that finished on a node but could not be written home is
failed, never missing.

A node lost while a run is on it (its raylet killed, the machine gone) makes Ray
retry the task on another node (``max_retries``) with the same files, so the run
starts again from the driver's last copy and ends with the same numbers (training
is deterministic at a fixed thread count). With ``storage`` (a folder every node
mounts, or a ``pyarrow.fs`` URI such as ``s3://bucket/path``) each node also
copies the checkpoint there after every epoch, and a retried run continues from
the newest one instead.

Connecting checks the address first: a port that refuses or does not answer, or
that answers but is no Ray head, is a one-line :class:`ConfigError` within
seconds, not minutes of retries. A cluster with token authentication (Ray >=
2.52) is reached with the token from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``
or ``~/.ray/auth_token``, without setting ``RAY_AUTH_MODE`` by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tensorrnn.atomic import atomic_write, atomic_write_json
from tensorrnn.errors import ConfigError, TensorRNNError
from tensorrnn.runfolder import RunFolder

# Written home in this order: result.json last, so its presence means "all of it arrived".
RUN_FILES = RunFolder.FILES
SHIPPED_FILES = RunFolder.RESUME_FILES
MAX_RETRIES = 3  # Ray retries a task this often when its worker or node dies
CONNECT_TIMEOUT_S = 2.0  # TCP connect to the head's GCS port
PROBE_TIMEOUT_S = 4.0  # the whole "is it a Ray head, which auth" check
MIRROR_INTERVAL_S = 0.5  # how often a node looks for a new checkpoint to copy to storage
AUTH_VARIABLES = "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"


# --------------------------------------------------------------------------- #
# Run folders: packed on one side, written home on the other
# --------------------------------------------------------------------------- #


def pack_run(folder: str | Path, names: Sequence[str] = RUN_FILES) -> dict[str, bytes]:
    """The run files present in ``folder``, as bytes keyed by file name."""
    folder = Path(folder)
    return {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}


def unpack_run(folder: str | Path, files: Mapping[str, bytes]) -> Path:
    """Write run files into ``folder`` atomically, ``result.json`` last.

    Only the names of :data:`RUN_FILES` are written; a half-written set never
    looks finished, because ``result.json`` is written after everything else.
    """
    unknown = sorted(set(files) - set(RUN_FILES))
    if unknown:
        raise ValueError(f"not run files: {', '.join(unknown)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if name in files:
            data = files[name]
            atomic_write(folder / name, lambda handle, data=data: handle.write(data), binary=True)
    return folder


def _checkpoint_epochs(data: bytes | None) -> int:
    """Epochs recorded in a checkpoint (train.py's ``history``), -1 if unreadable."""
    if data is None:
        return -1
    import io

    import torch

    try:
        return len(torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")["history"])
    except Exception:  # noqa: BLE001 - a damaged copy is simply not used
        return -1


# --------------------------------------------------------------------------- #
# Optional storage every node reaches (a shared folder or a pyarrow.fs URI)
# --------------------------------------------------------------------------- #


def check_storage(location: str | None) -> str | None:
    """Validate ``--storage`` on the driver: an absolute path or a URI with a scheme."""
    if location is None:
        return None
    location = str(location).strip()
    if "://" in location:
        return location.rstrip("/")
    if not location or not os.path.isabs(location):
        raise ConfigError(
            f"--storage {location!r}: give an absolute folder that every node mounts at the same "
            "path (NFS), or a URI such as s3://bucket/path or gs://bucket/path"
        )
    return location.rstrip("/") or "/"


class Storage:
    """A folder or a ``pyarrow.fs`` URI; objects are written whole (temporary name, then moved)."""

    def __init__(self, location: str) -> None:
        self.location = location
        if "://" in location:
            try:
                from pyarrow import fs as pafs
            except ImportError:
                raise ConfigError(
                    f"--storage {location}: URIs need pyarrow on every node (pip install pyarrow); "
                    "or give a shared folder"
                ) from None
            self._fs, self._base = pafs.FileSystem.from_uri(location)
            self._missing = pafs.FileType.NotFound
        else:
            self._fs, self._base = None, location

    def read(self, key: str) -> bytes | None:
        if self._fs is None:
            path = Path(self._base) / key
            return path.read_bytes() if path.is_file() else None
        path = f"{self._base}/{key}"
        if self._fs.get_file_info(path).type == self._missing:
            return None
        with self._fs.open_input_stream(path) as handle:
            return handle.read()

    def write(self, key: str, data: bytes) -> None:
        if self._fs is None:
            path = Path(self._base) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda handle: handle.write(data), binary=True)
            return
        path = f"{self._base}/{key}"
        self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with self._fs.open_output_stream(temporary) as handle:
            handle.write(data)
        self._fs.move(temporary, path)


class _Mirror:
    """Copies ``checkpoint.pt`` to storage whenever the run replaces it (after each epoch)."""

    def __init__(self, folder: Path, storage: Storage, key: str) -> None:
        self.source, self.storage, self.key = folder / "checkpoint.pt", storage, key
        self.seen: tuple[int, int, int] | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="checkpoint-mirror", daemon=True)

    def __enter__(self) -> _Mirror:
        self.sync()  # a resumed checkpoint is there before the first epoch ends
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sync()

    def _loop(self) -> None:
        while not self._stop.wait(MIRROR_INTERVAL_S):
            self.sync()

    def sync(self) -> None:
        try:
            with self.source.open("rb") as handle:  # os.replace: this is one whole version
                stat = os.fstat(handle.fileno())
                signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
                if signature == self.seen:
                    return
                data = handle.read()
            self.storage.write(f"{self.key}/checkpoint.pt", data)
            self.seen = signature
        except FileNotFoundError:
            return
        except Exception as error:  # noqa: BLE001 - the run goes on; the driver is told
            self.error = self.error or f"{type(error).__name__}: {error}"


def _resume_from_storage(storage: Storage, key: str, folder: Path, config_json: dict[str, Any]) -> None:
    """Put the newer of the shipped and the stored checkpoint in ``folder``; record the config."""
    from tensorrnn.train import RunConfig

    stored_config = storage.read(f"{key}/config.json")
    if stored_config is not None:
        stored = {**RunConfig().to_json(), **json.loads(stored_config)}
        if stored != {**RunConfig().to_json(), **config_json}:
            raise ConfigError(
                f"--storage {storage.location}/{key} holds a run with another config; "
                "give another --storage, or delete that folder to start over"
            )
    else:
        storage.write(f"{key}/config.json", json.dumps(config_json, indent=2, sort_keys=True).encode())
    stored_checkpoint = storage.read(f"{key}/checkpoint.pt")
    shipped = folder / "checkpoint.pt"
    shipped_data = shipped.read_bytes() if shipped.is_file() else None
    if _checkpoint_epochs(stored_checkpoint) > _checkpoint_epochs(shipped_data):
        atomic_write(shipped, lambda handle: handle.write(stored_checkpoint), binary=True)


# --------------------------------------------------------------------------- #
# The task: one grid point on a node
# --------------------------------------------------------------------------- #


def node_label() -> str:
    """``node IP (host name, node id)`` of the node this code runs on."""
    host = socket.gethostname()
    ray = sys.modules.get("ray")
    # Outside a Ray worker, asking Ray for the node would start a local Ray.
    if ray is None or not ray.is_initialized():
        return f"node {host}"
    try:
        ip = ray.util.get_node_ip_address()
        node = ray.get_runtime_context().get_node_id()[:8]
        return f"node {ip} ({host}, {node})"
    except Exception:  # noqa: BLE001 - the host name alone
        return f"node {host}"


def _name_the_node(folder: Path, home: str, node: str) -> None:
    """Rewrite ``error.json``: the driver's folder for the node's temporary one, the node named."""
    path = folder / "error.json"
    if not path.is_file():
        return
    recorded = json.loads(path.read_text())
    message = recorded.get("error", "").replace(str(folder), home)
    if message.startswith("DataError"):
        message += (" (each node loads the data set itself: install it on every node, e.g. "
                    "`tensorrnn data --download NAME` there, or a data_dir that every node has)")  # fmt: skip
    recorded["error"] = f"on {node}: {message}"
    recorded["traceback"] = recorded.get("traceback", "").replace(str(folder), home)
    recorded["node"] = node
    atomic_write_json(path, recorded)


def run_on_node(
    config_json: dict[str, Any],
    home: str,
    threads: int,
    shipped: Mapping[str, bytes],
    storage: str | None = None,
    storage_key: str | None = None,
) -> dict[str, Any]:
    """Train one grid point in a temporary folder of this node and return its files.

    ``home`` is the run folder on the driver (named in error messages, never
    written here). Never raises for a failed run: its ``error.json`` comes back.
    """
    from tensorrnn.executors import execute_run

    node = node_label()
    work = Path(tempfile.mkdtemp(prefix="tensorrnn-run-"))
    folder = work / Path(home).name
    try:
        folder.mkdir()
        unpack_run(folder, shipped)
        warning = None
        try:
            if storage is not None:
                store = Storage(storage)
                key = storage_key or folder.name
                _resume_from_storage(store, key, folder, config_json)
                with _Mirror(folder, store, key) as mirror:
                    outcome = execute_run(config_json, str(folder), threads)
                if mirror.error:
                    warning = f"{home}: checkpoints not copied to --storage on {node}: {mirror.error}"
            else:
                outcome = execute_run(config_json, str(folder), threads)
        except Exception as error:  # noqa: BLE001 - storage trouble fails this run only
            message = f"{type(error).__name__}: {error}"
            atomic_write_json(folder / "error.json", {"error": message, "traceback": ""})
            outcome = {"status": "failed", "error": message}
        if outcome["status"] == "failed":
            _name_the_node(folder, home, node)
        return {"status": outcome["status"], "node": node, "files": pack_run(folder), "warning": warning}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- #
# Connecting: a bad address is an error within seconds; token auth is found
# --------------------------------------------------------------------------- #


def find_auth_token() -> str | None:
    """Where a Ray token is available, in Ray's own order; ``None`` if nowhere."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            readable = bool(Path(path).expanduser().read_text().strip())
        except OSError as error:
            raise ConfigError(f"RAY_AUTH_TOKEN_PATH={path} cannot be read ({error.strerror}); "
                              "point it at the file that holds the cluster's token") from None  # fmt: skip
        if not readable:
            raise ConfigError(f"RAY_AUTH_TOKEN_PATH={path} is empty; copy the cluster's token into it")
        return f"RAY_AUTH_TOKEN_PATH={path}"
    default = Path.home() / ".ray" / "auth_token"
    try:
        if default.is_file() and default.read_text().strip():
            return str(default)
    except OSError:
        return None
    return None


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``ray://HOST:PORT``, ``[v6]:PORT``) as a pair; one-line error otherwise."""
    text = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: write HOST:PORT, e.g. 10.0.0.5:6379 "
                          "(the port of `ray start --head --port`, 6379 by default)")  # fmt: skip
    return host, int(port)


# Run in a child process: Ray's GCS client retries for tens of seconds and its
# timeouts are process-wide settings, which must not shorten the driver's own.
_PROBE = r"""
import json, os, sys
os.environ.setdefault("RAY_py_gcs_connect_timeout_s", "2")
os.environ.setdefault("RAY_gcs_rpc_server_connect_timeout_s", "2")
os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "2")
try:
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError
except Exception as error:
    print(json.dumps({"outcome": "error", "detail": f"cannot import Ray: {error}"}))
    sys.exit()
try:
    client = GcsClient(address=sys.argv[1])
    client.internal_kv_get(b"session_name", b"session", timeout=2)
except AuthenticationError as error:
    print(json.dumps({"outcome": "auth", "detail": str(error).splitlines()[0]}))
except Exception as error:
    print(json.dumps({"outcome": "error", "detail": f"{type(error).__name__}: {error}".splitlines()[0]}))
else:
    answer = {"outcome": "ok"}
    try:  # a driver needs a node of the cluster on its machine (else Ray waits 60 s, then fails)
        from ray._private.services import find_node_ids
        from ray.core.generated.gcs_pb2 import GcsNodeInfo
        alive = {key.hex() for key, info in client.get_all_node_info(timeout=2).items()
                 if info.state == GcsNodeInfo.ALIVE}
        answer["local_node"] = bool(alive & set(find_node_ids()))
    except Exception:
        pass  # unknown: ray.init decides
    print(json.dumps(answer))
"""


def _answers_grpc(host: str, port: int) -> bool | None:
    """Whether the port speaks HTTP/2 (gRPC, as a Ray head's GCS does); ``None``: no answer in time.

    The client's connection preface and an empty SETTINGS frame; an HTTP/2 server answers
    with its own SETTINGS frame (type 4) at once.
    """
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as connection:
            connection.settimeout(CONNECT_TIMEOUT_S)
            connection.sendall(preface)
            header = b""
            while len(header) < 9:
                chunk = connection.recv(9 - len(header))
                if not chunk:
                    return False
                header += chunk
    except TimeoutError:
        return None
    except OSError:
        return False
    return header[3] == 4


def _probe_gcs(address: str, timeout: float, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True,
                              timeout=timeout, env=dict(env))  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        pass
    # Ray's C++ client aborts on a failed check (a token mode without a token, say): its stack
    # trace ends the output, the reason is on the "Check failed" line above it.
    errors = done.stderr.strip().splitlines()
    reason = next((line.split("Check failed:", 1)[1].strip() for line in errors if "Check failed:" in line),
                  None)  # fmt: skip
    if reason is not None or done.returncode < 0:
        return {"outcome": "crash", "detail": reason or f"killed by signal {-done.returncode}"}
    return {"outcome": "error", "detail": (errors or ["no answer"])[-1]}


def check_address(address: str) -> dict[str, str]:
    """Make sure a Ray head answers at ``address``; return environment settings it needs.

    Raises :class:`ConfigError` when the port refuses, does not answer or is no gRPC
    server (within ``2 * CONNECT_TIMEOUT_S``); when it is no Ray head, the cluster
    wants a token that is missing or wrong, or this machine runs no node of the
    cluster (within ``PROBE_TIMEOUT_S`` more, twice that with a token). Returns
    ``{"RAY_AUTH_MODE": "token"}`` when the cluster uses token authentication and
    ``RAY_AUTH_MODE`` was not set.
    """
    host, port = split_address(address)
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode == "token" and find_auth_token() is None:  # Ray's client would abort with a stack trace
        raise ConfigError(f"--address {address}: RAY_AUTH_MODE=token is set here but no token was found; "
                          f"put the head's token (`ray get-auth-token` there) in {AUTH_VARIABLES}, "
                          "or unset RAY_AUTH_MODE (the token mode is found by itself)")  # fmt: skip
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise ConfigError(
            f"--address {address}: cannot reach a Ray head ({reason.lower()}); start one there with "
            f"`ray start --head --port {port}`, or fix the address"
        ) from None
    if address.startswith("ray://"):
        return {}  # Ray Client: its server speaks another protocol; ray.init reports its errors
    grpc = _answers_grpc(host, port)
    if not grpc:
        what = "nothing answered within" if grpc is None else "it is no gRPC server, as a Ray head is"
        seconds = f" {CONNECT_TIMEOUT_S:.0f} s" if grpc is None else ""
        raise ConfigError(f"--address {address}: the port accepts connections but {what}{seconds}; give "
                          "the head's GCS port (`ray start --head --port`, 6379 by default)")  # fmt: skip
    budget = PROBE_TIMEOUT_S
    probe = _probe_gcs(address, budget, os.environ)
    if probe["outcome"] == "auth" and mode is None:
        source = find_auth_token()
        if source is None:
            raise ConfigError(
                f"--address {address}: the Ray cluster uses token authentication and no token was "
                f"found; put the head's token (`ray get-auth-token` there) in {AUTH_VARIABLES}"
            )
        probe = _probe_gcs(address, budget, {**os.environ, "RAY_AUTH_MODE": "token"})
        if probe["outcome"] == "auth":
            raise ConfigError(f"--address {address}: the Ray cluster rejected the token from {source}; "
                              "use the head's token (`ray get-auth-token` there)")  # fmt: skip
        if probe["outcome"] == "ok":
            _require_local_node(address, probe)
            return {"RAY_AUTH_MODE": "token"}
    if probe["outcome"] == "auth":
        raise ConfigError(
            f"--address {address}: the Ray cluster rejected this connection's authentication "
            f"(RAY_AUTH_MODE={mode}); unset RAY_AUTH_MODE or set it to token, with the head's token in "
            f"{AUTH_VARIABLES}"
        )
    if probe["outcome"] == "timeout":
        raise ConfigError(f"--address {address}: the port answers but no Ray head replied within "
                          f"{budget:.0f} s; give the head's GCS port (`ray start --head --port`, 6379 "
                          "by default)")  # fmt: skip
    if probe["outcome"] == "crash":
        raise ConfigError(f"--address {address}: Ray's client stopped while connecting "
                          f"(RAY_AUTH_MODE={mode}): {probe['detail']}")  # fmt: skip
    if probe["outcome"] != "ok":
        detail = probe.get("detail", "no answer")
        raise ConfigError(f"--address {address}: no Ray head there ({detail}); give the head's GCS "
                          "port (`ray start --head --port`, 6379 by default)")  # fmt: skip
    _require_local_node(address, probe)
    return {}


def _require_local_node(address: str, probe: Mapping[str, Any]) -> None:
    if probe.get("local_node") is False:
        raise ConfigError(
            f"--address {address}: this machine is no node of that Ray cluster, and a driver must run "
            f"on one; run tensorrnn compare on the head, or first join this machine with "
            f"`ray start --address {address} --num-cpus 0`"
        )


def _enable_token_mode() -> None:
    """``RAY_AUTH_MODE=token`` for this process, as Ray itself does when it finds a token."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._raylet import Config

        Config.initialize("")  # Ray caches its settings: reread them from the environment
    except Exception:  # noqa: BLE001 - older Ray reads the variable at connect time
        pass


def _connect(address: str | None, quiet: bool) -> None:
    """``ray.init`` with a checked address (token mode switched on where the cluster needs it)."""
    import logging

    target = address or os.environ.get("RAY_ADDRESS")  # ray.init(address=None) honours it too
    needs = check_address(target) if target not in (None, "", "auto") else {}
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'tensorrnn[ray]'") from None
    if needs.get("RAY_AUTH_MODE") == "token":
        _enable_token_mode()
    try:
        ray.init(address=address, log_to_driver=False, ignore_reinit_error=True,
                 logging_level=logging.WARNING if quiet else logging.INFO,
                 include_dashboard=False if target in (None, "") else None)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = target or "a new local Ray"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"cannot connect to {where}: {first}") from None


def _check_capacity(ray: Any, threads: int, address: str | None) -> None:
    sizes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    if not sizes or max(sizes) < threads:
        raise ConfigError(
            f"no node of the Ray cluster at {address or 'this machine'} has {threads} CPUs "
            f"(largest: {max(sizes, default=0):g}); lower --threads or add larger nodes"
        )


@contextlib.contextmanager
def ray_session(
    address: str | None, threads: int, *, storage: str | None = None, quiet: bool = False
) -> Iterator[None]:
    """Connected to Ray for the block (a connection made here is closed after it).

    Everything a user can get wrong is checked on entry, in seconds: the storage
    location, the address, the token, a node large enough for ``threads``.
    """
    check_storage(storage)
    ray = sys.modules.get("ray")
    started_here = ray is None or not ray.is_initialized()
    if started_here:
        _connect(address, quiet)  # checks the address before Ray is even imported
    import ray
    try:
        _check_capacity(ray, threads, address)
        yield
    finally:
        if started_here:
            ray.shutdown()


# --------------------------------------------------------------------------- #
# The driver
# --------------------------------------------------------------------------- #


def write_home(folder: Path, outcome: Mapping[str, Any]) -> str | None:
    """Write a node's outcome into the driver's run folder; return a problem that stays, if any.

    A run whose files cannot all be written is recorded as failed (``error.json``);
    only when even that fails is the problem returned for the caller to raise.
    """
    try:
        unpack_run(folder, outcome["files"])
        return None
    except OSError as error:
        problem = (f"{outcome.get('status', 'ran')} on {outcome.get('node', 'a node')} but could not be "
                   f"written into {folder}: {error}; free space or fix permissions and rerun")  # fmt: skip
    try:
        (folder / "result.json").unlink(missing_ok=True)
        atomic_write_json(folder / "error.json", {"error": problem, "traceback": ""})
        return None
    except OSError:
        return problem


def _lost(folder: Path, error: BaseException) -> str | None:
    """A task Ray gave up on: its node died more than ``MAX_RETRIES`` times, or the task
    could not even start there (e.g. tensorrnn is not installed on that node)."""
    import ray

    first = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, ray.exceptions.RayTaskError):
        message = (f"{type(error).__name__}: the run could not start on a node ({first}); install the "
                   "same tensorrnn and torch on every node and rerun the command")  # fmt: skip
    else:
        message = (f"{type(error).__name__}: the run was lost with its node {MAX_RETRIES + 1} times "
                   f"({first}); rerun the command to resume it")  # fmt: skip
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "error.json", {"error": message, "traceback": ""})
        return None
    except OSError as write_error:
        return f"{message}; and could not record that in {folder}: {write_error}"


def run_on_ray(
    tasks: Sequence[tuple[dict[str, Any], str]],
    address: str | None,
    threads: int,
    progress: Callable[[], None],
    *,
    storage: str | None = None,
    sweep_name: str = "sweep",
    quiet: bool = False,
) -> list[str]:
    """Run ``(config, run folder)`` pairs as Ray tasks; every outcome is written home.

    Returns the problems that could not even be recorded in a run folder (the
    caller raises them after writing ``results.csv``).
    """
    storage = check_storage(storage)
    problems: list[str] = []
    with ray_session(address, threads, quiet=quiet):
        import ray

        remote = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES)(run_on_node)
        folders = {}
        for config_json, folder in tasks:
            home = Path(folder).resolve()
            key = f"{sweep_name}/{home.name}"
            ref = remote.remote(config_json, str(home), threads, pack_run(home, SHIPPED_FILES), storage, key)
            folders[ref] = home
        pending = list(folders)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                home = folders.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as error:
                    problem = _lost(home, error)
                else:
                    problem = write_home(home, outcome)
                    if outcome.get("warning") and not quiet:
                        print(f"warning: {outcome['warning']}", file=sys.stderr)
                if problem is not None:
                    problems.append(problem)
                progress()
    return problems


# --------------------------------------------------------------------------- #
# Rank sweeps: one task per setting, rows home to the driver's ranks.csv
# --------------------------------------------------------------------------- #


def measure_rank_job(job: Any, settings: Any, methods: tuple[str, ...], threads: int) -> dict[str, dict]:
    """A rank sweep's task on a node: the job's rows (nothing is written on the node)."""
    import torch

    from tensorrnn.ranks.lab import measure_job

    torch.set_num_threads(threads)
    return measure_job(job, settings, methods)


class MeasureOnRay:
    """A rank sweep's executor (``ranks.lab.RankExecutor``): each instance a Ray task.

    Each task asks Ray for ``threads`` CPUs and the memory its matrices need
    (``ranks.lab.job_bytes``), so a large matricization lands only on a node where it
    fits; one larger than every node is refused by :meth:`check`, before the sweep
    writes anything. Rows come back through Ray's object store and the driver appends
    them as they arrive; a task lost with its node is retried elsewhere
    (``MAX_RETRIES``), and one lost for good is an error once every other row is home
    (rerunning measures it).
    """

    def __init__(self, address: str | None, threads: int, *, quiet: bool = False) -> None:
        self.address, self.threads, self.quiet = address, threads, quiet
        self._connected_here = False

    def check(self, jobs: Sequence[Any], settings: Any) -> None:
        from tensorrnn.ranks.lab import job_bytes

        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            _connect(self.address, self.quiet)
            self._connected_here = True
        import ray

        _check_capacity(ray, self.threads, self.address)
        largest = max((n["Resources"].get("memory", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        need = max((job_bytes(job, settings) for job in jobs), default=0)
        if need > largest:
            self.close()
            raise ConfigError(f"a setting needs {need / 2**30:.1f} GiB for its matrices and the largest node "
                              f"of the Ray cluster offers {largest / 2**30:.1f} GiB; cut --max-side or add "
                              "a larger node")  # fmt: skip

    def close(self) -> None:
        if self._connected_here:
            import ray

            ray.shutdown()
            self._connected_here = False

    def __call__(
        self, pending: Sequence[tuple[Any, tuple[str, ...]]], settings: Any
    ) -> Iterator[tuple[Any, dict]]:
        import ray

        from tensorrnn.ranks.lab import job_bytes

        try:
            remote = ray.remote(max_retries=MAX_RETRIES)(measure_rank_job)
            jobs = {}
            for job, methods in pending:
                task = remote.options(num_cpus=self.threads, memory=max(job_bytes(job, settings), 1))
                jobs[task.remote(job, settings, methods, self.threads)] = job
            waiting, lost = list(jobs), []
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    try:
                        rows = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        first = (str(error).strip().splitlines() or [""])[0]
                        lost.append(f"{jobs[ref]}: {type(error).__name__}: {first}")
                        continue
                    yield jobs[ref], rows
        finally:
            self.close()
        if lost:
            more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
            raise TensorRNNError(f"{len(lost)} setting(s) could not be measured on the cluster: {lost[0]}"
                                 f"{more}; every other row is in ranks.csv, rerun the command to measure "
                                 "the rest")  # fmt: skip


def raise_unrecorded(problems: Sequence[str]) -> None:
    """After ``results.csv``: runs whose outcome is in no file are an error, never "missing"."""
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TensorRNNError(
            f"{len(problems)} run(s) have no record in the sweep folder: {problems[0]}{more}"
        )
