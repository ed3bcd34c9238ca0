"""A Ray cluster on this machine, used as a real one: nothing shared but the network.

A head and a second node are started with ``ray start`` (each with its own
``--temp-dir`` and ports, token authentication on because the cluster's ``$HOME`` holds
``.ray/auth_token``, as ``ray start --head`` does for a user with a token). The driver
runs ``tensorrnn compare`` inside its own mount namespace (``unshare -m``) with a private
tmpfs as its sweep folder, so no node can see the driver's files, nor the driver the
nodes'. Every process a test starts is stopped by PID (never ``ray stop``, which would
stop every Ray on the machine), also when a test fails.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from tensorrnn.cluster import check_address  # noqa: E402
from tensorrnn.errors import ConfigError  # noqa: E402
from tensorrnn.sweep import plan_sweep, run_sweep  # noqa: E402

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")
TENSORRNN = [sys.executable, "-c", "from tensorrnn.cli import main; main()"]
GRID = {
    "name": "grid",
    "dataset": "synthetic-tt",
    "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 600},
    "model": ["tt", "tt-shared"], "rank": [2, 3], "seed": 0,
    "patch": 1, "feature_dim": 4, "batch_size": 32, "lr": 0.02, "epochs": 2, "init": "gaussian",
}  # fmt: skip
# Long enough (about 3 s a run here) for a node to be killed in the middle of one.
LONG_GRID = {**GRID, "name": "long", "epochs": 12,
             "dataset_options": {**GRID["dataset_options"], "n_samples": 4000}}  # fmt: skip
STABLE = ("run", "status", "dataset", "model", "rank", "seed", "patch", "d", "test_accuracy", "val_accuracy",
          "train_accuracy", "num_parameters", "epochs_completed", "best_epoch", "error")  # fmt: skip


# --------------------------------------------------------------------------- #
# Processes: found by the node's temp dir, stopped by PID (start time checked)
# --------------------------------------------------------------------------- #


def _processes() -> dict[int, tuple[int, str, str, str]]:
    """pid -> (parent pid, start time, state, command line) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), fields[19], fields[0], command)
    return table


def _tree(marker: str) -> set[tuple[int, str]]:
    """(pid, start time) of the processes whose command line holds ``marker``, and their descendants."""
    table = _processes()
    mine, pid = set(), os.getpid()  # this process and its ancestors are never in a node's tree
    while pid in table and pid not in mine:
        mine.add(pid)
        pid = table[pid][0]
    found = {pid for pid, (_, _, _, command) in table.items() if marker in command} - mine
    grew = True
    while grew:
        children = {pid for pid, (parent, *_) in table.items() if parent in found} - found
        grew = bool(children)
        found |= children
    return {(pid, table[pid][1]) for pid in found}


def _alive(known: set[tuple[int, str]]) -> set[tuple[int, str]]:
    table = _processes()
    return {(pid, start) for pid, start in known
            if pid in table and table[pid][1] == start and table[pid][2] != "Z"}  # fmt: skip


def _stop(known: set[tuple[int, str]], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, _ in _alive(known):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while _alive(known) and time.monotonic() < deadline:
            time.sleep(0.2)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalCluster:
    """Ray nodes on this machine, each with its own temp dir and ports."""

    def __init__(self, home: Path) -> None:
        # Unix socket paths are short: the temp dirs live under /tmp, not under pytest's tmp_path.
        self.root = Path(tempfile.mkdtemp(prefix="trr-", dir="/tmp"))
        self.home = home
        self.address = ""
        self.temp_dirs: dict[str, Path] = {}
        self.known: set[tuple[int, str]] = set()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1",
                        OMP_WAIT_POLICY="PASSIVE")  # fmt: skip

    def start(self, name: str, *, head: bool = False, cpus: int = 1, tmpdir: Path | None = None) -> None:
        temp = self.root / name
        self.temp_dirs[name] = temp
        ports = _free_ports(8)
        command = [str(RAY), "start", "--temp-dir", str(temp), "--num-cpus", str(cpus),
                   "--disable-usage-stats",
                   "--dashboard-agent-listen-port", str(ports[0]), "--dashboard-agent-grpc-port",
                   str(ports[1]), "--metrics-export-port", str(ports[2]), "--runtime-env-agent-port",
                   str(ports[3]), "--node-manager-port", str(ports[4]), "--object-manager-port",
                   str(ports[5])]  # fmt: skip
        if head:
            command += ["--head", "--port", str(ports[6]), "--include-dashboard=false", "--dashboard-port",
                        str(ports[7])]  # fmt: skip
            self.address = f"127.0.0.1:{ports[6]}"
        else:
            command += ["--address", self.address]
        env = {**self.env, **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
        if not head:
            env["RAY_AUTH_MODE"] = "token"  # Ray turns token mode on by itself for a head only
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        finally:
            self.remember()
        assert done.returncode == 0, f"ray start {name} failed:\n{done.stdout}\n{done.stderr}"

    def remember(self) -> None:
        for temp in self.temp_dirs.values():
            self.known |= _tree(str(temp))

    def raylet(self, name: str) -> int:
        marker = f"--session_dir={self.temp_dirs[name]}/"
        pids = [pid for pid, (_, _, state, command) in _processes().items()
                if command.split(" ")[0].endswith("raylet/raylet") and marker in command
                and state != "Z"]  # fmt: skip
        assert len(pids) == 1, pids
        return pids[0]

    def tasks_on(self, name: str) -> list[int]:
        """Workers of node ``name`` running a grid point now (Ray names the process after the task)."""
        table = _processes()
        raylet = self.raylet(name)
        return [pid for pid, (parent, _, _, command) in table.items()
                if parent == raylet and command.startswith("ray::run_on_node")]  # fmt: skip

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's raylet and its workers: the node is lost with whatever runs on it.

        The raylet alone is not enough: its worker lives on for a moment, and can finish a
        short run and hand the result straight to the driver, so that nothing is retried
        (the lost-node test once failed that way, seeing the victim's own epoch lines).
        """
        self.remember()
        raylet = self.raylet(name)
        workers = [pid for pid, (parent, *_) in _processes().items() if parent == raylet]
        for pid in (raylet, *workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        self.remember()
        _stop(self.known)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(os.urandom(16).hex())
    return home


@pytest.fixture(scope="module")
def cluster(cluster_home: Path):
    if not RAY.exists():
        pytest.skip(f"no ray command beside {sys.executable}")
    nodes = LocalCluster(cluster_home)
    try:
        nodes.start("head", head=True)
        nodes.start("worker")
        yield nodes
    finally:
        nodes.stop()
    assert not _alive(nodes.known), "Ray processes left running"


# --------------------------------------------------------------------------- #
# The driver: its own mount namespace, a private tmpfs as its sweep folder
# --------------------------------------------------------------------------- #


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_private_driver(script: str, private: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``script`` (sh) with a tmpfs at ``private`` that only its mount namespace sees."""
    private.mkdir(parents=True, exist_ok=True)
    whole = f'mount -t tmpfs -o size=256m tmpfs "{private}"\n{script}'
    return subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-euc", whole], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def finish(driver: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """Wait for the driver; on a timeout (or any error) kill its whole process group."""
    try:
        out, err = driver.communicate(timeout=timeout)
    except BaseException:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate()
        raise
    return driver.returncode, out, err


@pytest.fixture
def private_driver():
    if not _unshare_works():
        pytest.skip("unshare -m is not permitted here (needs root or user namespaces)")
    return start_private_driver


def _driver_env(cluster: LocalCluster, **extra: str) -> dict[str, str]:
    # No RAY_AUTH_MODE, no RAY_ADDRESS: only what a user with the head's token in ~/.ray has.
    return {**cluster.env, "PYTHONUNBUFFERED": "1", **extra}


def _compare(config: Path, out: str, address: str, *options: str) -> str:
    command = [*TENSORRNN, "compare", "--config", str(config), "--executor", "ray", "--address", address,
               "--threads", "1", "--out", out, "-q", *options]  # fmt: skip
    return " ".join(f"'{part}'" for part in command)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return [{k: row[k] for k in STABLE} for row in csv.DictReader(handle)]


def _write(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def local_sweeps(tmp_path_factory) -> dict[str, Path]:
    """The same grids run locally, one thread per run: the rows a cluster must reproduce."""
    out = {}
    for values in (GRID, LONG_GRID):
        plan = plan_sweep(values, values["name"], tmp_path_factory.mktemp(f"local-{values['name']}"))
        out[values["name"]] = run_sweep(plan, jobs=2, threads=1, quiet=True)
    return out


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #


@pytest.mark.timeout(400)
def test_no_shared_file_system_results_come_home(cluster, local_sweeps, private_driver, tmp_path: Path):
    local = local_sweeps["grid"]
    config = _write(tmp_path / "grid.yaml", GRID)
    bad_data = _write(tmp_path / "bad.yaml", {**GRID, "name": "bad", "model": "tt", "rank": 2,
                                              "dataset": "mnist", "dataset_options": {},
                                              "data_dir": str(tmp_path / "private" / "data")})  # fmt: skip
    private, copy = tmp_path / "private", tmp_path / "copy"
    sweep = private / "sweep"
    # One run was stopped after its last epoch, before result.json: the node must get its checkpoint.
    script = f"""
        mkdir -p "{sweep}/runs" "{private}/data/mnist"
        cp -r "{local}/runs/tt-rank2" "{sweep}/runs/" && rm "{sweep}/runs/tt-rank2/result.json"
        {_compare(config, str(sweep), cluster.address)}
        echo "first rc $?"
        {_compare(config, str(sweep), cluster.address).replace(" '-q'", "")}
        {_compare(bad_data, f"{private}/bad", cluster.address)}
        mkdir -p "{copy}" && cp -r "{private}/." "{copy}/"
    """
    started = time.monotonic()
    code, out, err = finish(private_driver(script, private, _driver_env(cluster)), timeout=300)
    seconds = time.monotonic() - started
    assert code == 0, f"{out}\n{err}"
    assert "first rc 0" in out and "grid: 4 of 4 runs already finished" in out, out
    assert not any(private.iterdir()), "the driver's tmpfs must be invisible outside its namespace"

    home = copy / "sweep"
    for run in ("tt-rank2", "tt-rank3", "tt-shared-rank2", "tt-shared-rank3"):
        assert (home / "runs" / run / "result.json").is_file(), run
        assert (home / "runs" / run / "checkpoint.pt").is_file(), run
    assert _rows(home / "results.csv") == _rows(local / "results.csv")
    assert (home / "report.md").stat().st_size > 0
    # The resumed run trained nothing again: its metrics (measured seconds included) are the local ones.
    resumed = "runs/tt-rank2/metrics.jsonl"
    assert (home / resumed).read_bytes() == (local / resumed).read_bytes()

    bad = _rows(copy / "bad" / "results.csv")[0]
    assert bad["status"] == "failed" and bad["error"].startswith("on node "), bad
    assert f"DataError: data set 'mnist': the data dir {private}/data does not exist" in bad["error"]
    assert "each node loads the data set itself" in bad["error"]
    print(f"no-shared-fs driver: {seconds:.1f} s")


@pytest.mark.timeout(120)
def test_a_token_cluster_is_reached_with_any_token_place_and_refused_without(
    cluster, cluster_home, tmp_path, monkeypatch
):
    token = (cluster_home / ".ray" / "auth_token").read_text()
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    empty_home = tmp_path / "nobody"
    empty_home.mkdir()
    monkeypatch.setenv("HOME", str(empty_home))
    with pytest.raises(ConfigError, match="token authentication and no token was found; .*RAY_AUTH_TOKEN"):
        check_address(cluster.address)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    with pytest.raises(ConfigError, match="rejected the token from RAY_AUTH_TOKEN"):
        check_address(cluster.address)
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    assert check_address(cluster.address) == {"RAY_AUTH_MODE": "token"}
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    (tmp_path / "token").write_text(token)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "token"))
    assert check_address(cluster.address) == {"RAY_AUTH_MODE": "token"}
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("HOME", str(cluster_home))
    assert check_address(cluster.address) == {"RAY_AUTH_MODE": "token"}
    assert "RAY_AUTH_MODE" not in os.environ, "checking must not change this process"

    # The command line: one line, exit 2, nothing created.
    config = _write(tmp_path / "g.yaml", {**GRID, "model": "tt", "rank": 2})
    done = subprocess.run([*TENSORRNN, "compare", "--config", str(config), "--executor", "ray", "--address",
                           cluster.address, "--out", str(tmp_path / "out")],
                          env={**cluster.env, "HOME": str(empty_home)}, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr  # the subprocess timeout bounds its time
    assert done.stderr.strip().count("\n") == 0 and "no token was found" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(120)
def test_a_driver_on_no_node_of_the_cluster_fails_at_once(cluster, tmp_path: Path):
    """Ray needs a node on the driver's machine; without one it waits 60 s. A PID namespace of its
    own hides this machine's raylets from the driver, as another machine would."""
    if subprocess.run(["unshare", "-p", "-m", "--fork", "--mount-proc", "true"], capture_output=True,
                      timeout=10).returncode != 0:  # fmt: skip
        pytest.skip("unshare -p is not permitted here")
    config = _write(tmp_path / "g.yaml", {**GRID, "model": "tt", "rank": 2})
    done = subprocess.run(["unshare", "-p", "-m", "--fork", "--mount-proc", *TENSORRNN, "compare", "--config",
                           str(config), "--executor", "ray", "--address", cluster.address, "--out",
                           str(tmp_path / "out")],
                          env=_driver_env(cluster), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr  # the subprocess timeout bounds its time
    assert done.stderr.strip().count("\n") == 0 and "no node of that Ray cluster" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


# The exact CP fit's error and term norm are round-off (≈1e-16) of an exact fit, and
# their digits depend on the process's history (one instance alone in a process gives
# other digits than the same instance after others, measured); the ranks do not.
RANK_ROUND_OFF = ("seconds", "cp_fit_error", "cp_term_norm")
RANK_GRID = ["--family", "tt,tt-shared", "--n", "2,3", "--r", "2,3", "--d", "4", "--trials", "1"]


def _rank_rows(path: Path) -> list[tuple]:
    with path.open() as handle:
        return sorted(tuple((k, v) for k, v in row.items() if k not in RANK_ROUND_OFF)
                      for row in csv.DictReader(handle))  # fmt: skip


@pytest.mark.timeout(400)
def test_a_rank_sweep_on_the_cluster_equals_the_local_one(cluster, private_driver, tmp_path: Path):
    local = tmp_path / "local"
    done = subprocess.run([*TENSORRNN, "ranks", *RANK_GRID, "--out", str(local), "-q"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    private, copy = tmp_path / "private", tmp_path / "copy"
    def on_ray(grid: list[str], out: str) -> str:
        return " ".join(f"'{part}'" for part in [*TENSORRNN, "ranks", *grid, "--executor", "ray", "--address",
                                                 cluster.address, "--out", out, "-q"])  # fmt: skip

    too_big = ["--family", "tt", "--n", "4", "--r", "3", "--d", "16", "--trials", "1", "--max-memory", "1000"]
    script = f"""
        {on_ray(RANK_GRID, f"{private}/r")}
        set +e
        {on_ray(too_big, f"{private}/big")} 2> "{private}/big.err"
        echo "big rc $?"
        set -e
        mkdir -p "{copy}" && cp -r "{private}/." "{copy}/"
    """
    code, out, err = finish(private_driver(script, private, _driver_env(cluster)), timeout=300)
    assert code == 0, f"{out}\n{err}"
    assert _rank_rows(copy / "r" / "ranks.csv") == _rank_rows(local / "ranks.csv")
    assert (copy / "r" / "ranks.md").read_text() == (local / "ranks.md").read_text()
    # n = 4, d = 16: a 65536² matrix (64 GiB with the exact copy) fits no node: refused, nothing written.
    assert "big rc 2" in out, out
    refusal = [line for line in (copy / "big.err").read_text().splitlines() if "GiB" in line]
    assert len(refusal) == 1 and "largest node of the Ray cluster offers" in refusal[0], refusal
    assert not (copy / "big").exists()


@pytest.mark.timeout(500)
@pytest.mark.parametrize("storage", [False, True], ids=["retry-from-driver-copy", "retry-from-storage"])
def test_a_lost_node_loses_nothing(cluster, local_sweeps, private_driver, tmp_path: Path, storage: bool):
    """Kill a node's raylet while a run is on it (after at least one epoch): every run still
    finishes once, with the rows of the undisturbed local sweep."""
    victim = f"victim-{'storage' if storage else 'plain'}"
    node_tmp = tmp_path / "victim-tmp"  # where the victim trains (its TMPDIR)
    node_tmp.mkdir()
    cluster.start(victim, tmpdir=node_tmp)
    config = _write(tmp_path / "long.yaml", LONG_GRID)
    private, copy = tmp_path / "private", tmp_path / "copy"
    options = f" '--storage' '{tmp_path / 'bucket'}'" if storage else ""
    script = f"""
        {_compare(config, f"{private}/sweep", cluster.address)}{options}
        mkdir -p "{copy}" && cp -r "{private}/." "{copy}/"
    """
    driver = private_driver(script, private, _driver_env(cluster))
    bucket = tmp_path / "bucket" / LONG_GRID["name"]
    try:
        # Wait for a run on the victim that has finished an epoch but not the last ones (with
        # storage: whose checkpoint is already kept there), then kill the node under it.
        deadline, killed, lines_then = time.monotonic() + 180, None, []
        while killed is None and time.monotonic() < deadline and driver.poll() is None:
            for folder in node_tmp.glob("tensorrnn-run-*/*"):
                try:
                    lines = (folder / "metrics.jsonl").read_text().split("\n")[:-1]  # whole lines
                except OSError:
                    continue
                kept = not storage or (bucket / folder.name / "checkpoint.pt").is_file()
                if 1 <= len(lines) <= LONG_GRID["epochs"] - 3 and kept and cluster.tasks_on(victim):
                    cluster.kill_node(victim)
                    killed, lines_then = folder, lines
                    break
            time.sleep(0.05)
    except BaseException:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate()
        raise
    code, out, err = finish(driver, timeout=300)
    assert killed is not None, f"no run was caught on the victim node\n{out}\n{err}"
    assert code == 0, f"{out}\n{err}"
    assert not (killed / "result.json").exists(), "the run finished on the victim: nothing was retried"
    home = copy / "sweep"
    local = local_sweeps["long"]
    assert _rows(home / "results.csv") == _rows(local / "results.csv"), f"killed during {killed.name}"
    for run in (home / "runs").iterdir():
        epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(1, LONG_GRID["epochs"] + 1)), (run.name, epochs)
    # Epoch 1 as the victim measured it (its seconds included) survives only through storage.
    first = (home / "runs" / killed.name / "metrics.jsonl").read_text().splitlines()[0]
    assert (first == lines_then[0]) is storage, (first, lines_then[0])
    print(f"killed {victim} after epoch {len(lines_then)} of {killed.name}")
