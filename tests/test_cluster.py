"""The Ray executor's pieces without a cluster: files travel and come home whole, errors name
the node, storage resumes the newest checkpoint, addresses and tokens are checked in seconds.

The same pieces on a real cluster (a head and nodes on this machine, the driver in its own
mount namespace) are in test_cluster_ray.py.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml

from tensorrnn import cluster
from tensorrnn.cluster import (
    RUN_FILES,
    SHIPPED_FILES,
    check_address,
    check_storage,
    find_auth_token,
    pack_run,
    raise_unrecorded,
    run_on_node,
    split_address,
    unpack_run,
    write_home,
)
from tensorrnn.errors import ConfigError, TensorRNNError
from tensorrnn.sweep import plan_sweep, run_sweep
from tensorrnn.train import RunConfig, train_run

RUN = {
    "dataset": "synthetic-tt",
    "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 600},
    "model": "tt", "rank": 2, "seed": 0, "patch": 1, "feature_dim": 4, "batch_size": 32, "lr": 0.02,
    "epochs": 2, "init": "gaussian",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    # run_on_node sets the run's thread count in this process, as a Ray worker would.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("local") / "tt-rank2"
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_run(RunConfig.from_mapping(RUN), folder, quiet=True)
    finally:
        torch.set_num_threads(torch_threads)
    return folder


def _on_node(home: Path, values: dict, shipped: dict | None = None, **kwargs) -> dict:
    config = RunConfig.from_mapping(values).to_json()
    return run_on_node(config, str(home), 1, shipped or {}, **kwargs)


# --------------------------------------------------------------------------- #
# Files out and home
# --------------------------------------------------------------------------- #


def test_a_run_on_a_node_comes_home_whole_and_equal(tmp_path: Path, finished_run: Path):
    home = tmp_path / "driver" / "tt-rank2"
    outcome = _on_node(home, RUN)
    assert outcome["status"] == "finished" and outcome["node"].startswith("node ")
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized(), "naming the node outside Ray must not start one"
    assert set(outcome["files"]) == {
        "config.json", "metrics.jsonl", "checkpoint.pt", "result.json", "provenance.jsonl"
    }
    assert not home.exists(), "the node must not write into the driver's folder"
    unpack_run(home, outcome["files"])
    local = json.loads((finished_run / "result.json").read_text())
    came = json.loads((home / "result.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "train_accuracy", "num_parameters", "best_epoch"):
        assert came[key] == local[key], key
    assert not list(home.glob(".*.tmp")), "temporary files left behind"


def test_a_resumed_run_continues_from_the_shipped_checkpoint(tmp_path: Path, finished_run: Path):
    # Every epoch is in the checkpoint: a node that got it only evaluates, and the metrics
    # (with their measured seconds) are the original ones, not those of a new training.
    shipped = pack_run(finished_run, SHIPPED_FILES)
    assert set(shipped) == set(SHIPPED_FILES)
    outcome = _on_node(tmp_path / "tt-rank2", RUN, shipped)
    assert outcome["files"]["metrics.jsonl"] == (finished_run / "metrics.jsonl").read_bytes()
    result = json.loads(outcome["files"]["result.json"])
    assert result["seconds"] == json.loads((finished_run / "result.json").read_text())["seconds"]


def test_result_json_is_written_home_last(tmp_path: Path, monkeypatch):
    order = []
    real = cluster.atomic_write
    monkeypatch.setattr(cluster, "atomic_write", lambda path, *a, **k: (order.append(Path(path).name),
                                                                        real(path, *a, **k))[1])  # fmt: skip
    unpack_run(tmp_path, {name: b"{}" for name in reversed(RUN_FILES)})
    assert order == list(RUN_FILES) and order[-1] == "result.json"
    with pytest.raises(ValueError, match="not run files"):
        unpack_run(tmp_path, {"../escape": b""})


def test_a_run_that_cannot_be_written_home_is_failed_not_missing(tmp_path: Path, monkeypatch):
    values = {**RUN, "model": ["tt"], "name": "g"}
    plan = plan_sweep(values, "grid", tmp_path)
    home = tmp_path / "runs" / plan.runs[0].name
    files = {"config.json": b"{}", "metrics.jsonl": b"", "result.json": b'{"test_accuracy": 1}'}
    real = cluster.atomic_write

    def disk_full(path, *args, **kwargs):
        if Path(path).name == "result.json":
            raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cluster, "atomic_write", disk_full)
    assert write_home(home, {"status": "finished", "node": "node 10.0.0.7", "files": files}) is None
    assert not (home / "result.json").exists()
    error = json.loads((home / "error.json").read_text())["error"]
    assert "finished on node 10.0.0.7" in error and "No space left" in error
    from tensorrnn.sweep import collect_results

    assert collect_results(plan)[0]["status"] == "failed"

    # Not even error.json can be written: the caller gets the problem to raise.
    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(cluster, "atomic_write_json", read_only)
    problem = write_home(tmp_path / "other", {"status": "finished", "node": "node x", "files": files})
    assert problem is not None and "could not be written" in problem
    with pytest.raises(TensorRNNError, match="1 run\\(s\\) have no record"):
        raise_unrecorded([problem])


def test_a_missing_data_set_is_an_error_naming_the_node_and_the_drivers_folder(tmp_path: Path):
    home = tmp_path / "driver" / "mnist-run"
    values = {**RUN, "dataset": "mnist", "data_dir": "/nonexistent/tensorrnn-data", "dataset_options": {}}
    outcome = _on_node(home, values)
    assert outcome["status"] == "failed" and set(outcome["files"]) == {"error.json"}
    recorded = json.loads(outcome["files"]["error.json"])
    assert recorded["error"].startswith(f"on {outcome['node']}: DataError")
    assert "/nonexistent/tensorrnn-data does not exist" in recorded["error"]
    assert "each node loads the data set itself" in recorded["error"]


def test_a_failing_run_names_the_drivers_folder_not_the_nodes(tmp_path: Path, finished_run: Path):
    # The driver's folder holds another config: the node's refusal names the driver's folder.
    shipped = pack_run(finished_run, SHIPPED_FILES)
    home = tmp_path / "driver" / "tt-rank2"
    outcome = _on_node(home, {**RUN, "epochs": 3}, shipped)
    error = json.loads(outcome["files"]["error.json"])["error"]
    assert f"{home} holds a run with another config" in error and "tensorrnn-run-" not in error


# --------------------------------------------------------------------------- #
# Storage: every epoch's checkpoint where every node reaches it
# --------------------------------------------------------------------------- #


def test_storage_keeps_the_checkpoint_and_a_retry_continues_from_the_newest(tmp_path: Path,
                                                                           finished_run: Path):  # fmt: skip
    storage = tmp_path / "bucket"
    key = "grid/tt-rank2"
    # A node lost after its last epoch left the full checkpoint in storage; the retry gets an
    # older copy (none) from the driver and must continue from storage, not start again.
    (storage / key).mkdir(parents=True)
    shutil.copy(finished_run / "checkpoint.pt", storage / key / "checkpoint.pt")
    outcome = _on_node(tmp_path / "tt-rank2", RUN, storage=str(storage), storage_key=key)
    assert outcome["status"] == "finished" and outcome["warning"] is None
    assert outcome["files"]["metrics.jsonl"] == (finished_run / "metrics.jsonl").read_bytes()
    assert json.loads((storage / key / "config.json").read_text()) == RunConfig.from_mapping(RUN).to_json()

    fresh = _on_node(tmp_path / "fresh", RUN, storage=str(storage), storage_key="grid/fresh")
    assert (storage / "grid/fresh/checkpoint.pt").read_bytes() == fresh["files"]["checkpoint.pt"]

    other = _on_node(tmp_path / "x", {**RUN, "rank": 3}, storage=str(storage), storage_key=key)
    assert other["status"] == "failed"
    assert "holds a run with another config" in json.loads(other["files"]["error.json"])["error"]


def test_storage_by_uri_goes_through_pyarrow_fs(tmp_path: Path, finished_run: Path):
    pytest.importorskip("pyarrow.fs")
    store = cluster.Storage(f"file://{tmp_path}/bucket")
    assert store.read("grid/x/checkpoint.pt") is None
    store.write("grid/x/checkpoint.pt", b"one")
    store.write("grid/x/checkpoint.pt", b"two")
    assert store.read("grid/x/checkpoint.pt") == b"two"
    assert [p.name for p in (tmp_path / "bucket/grid/x").iterdir()] == ["checkpoint.pt"]
    outcome = _on_node(tmp_path / "tt-rank2", RUN, storage=f"file://{tmp_path}/bucket", storage_key="g/r")
    assert outcome["status"] == "finished"
    assert (tmp_path / "bucket/g/r/checkpoint.pt").read_bytes() == outcome["files"]["checkpoint.pt"]


def test_storage_must_be_absolute_or_a_uri_and_only_for_ray(tmp_path: Path):
    with pytest.raises(ConfigError, match="absolute folder that every node mounts"):
        check_storage("relative/folder")
    assert check_storage("s3://bucket/sweeps/") == "s3://bucket/sweeps"
    assert check_storage(str(tmp_path) + "/") == str(tmp_path)
    plan = plan_sweep({**RUN, "model": ["tt"]}, "grid", tmp_path / "out")
    with pytest.raises(ConfigError, match="use it with --executor ray"):
        run_sweep(plan, storage=str(tmp_path), quiet=True)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- #
# Addresses and tokens
# --------------------------------------------------------------------------- #


def test_addresses_are_parsed_or_refused_in_one_line():
    assert split_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert split_address("ray://head.example:10001") == ("head.example", 10001)
    assert split_address("[::1]:6379") == ("::1", 6379)
    for bad in ("10.0.0.5", "host:port", ":6379", "host:0", "host:70000"):
        with pytest.raises(ConfigError, match="write HOST:PORT"):
            split_address(bad)


def test_the_token_is_found_where_ray_looks_for_it(tmp_path: Path, monkeypatch):
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_auth_token() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("abc\n")
    assert find_auth_token() == str(tmp_path / ".ray" / "auth_token")
    token_file = tmp_path / "token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    with pytest.raises(ConfigError, match="RAY_AUTH_TOKEN_PATH=.* cannot be read"):
        find_auth_token()
    token_file.write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        find_auth_token()
    token_file.write_text("abc")
    assert find_auth_token() == f"RAY_AUTH_TOKEN_PATH={token_file}"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "abc")
    assert find_auth_token() == "RAY_AUTH_TOKEN"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refusing_address_is_an_error_at_once():
    with pytest.raises(ConfigError, match="cannot reach a Ray head \\(connection refused\\)"):
        check_address(f"127.0.0.1:{_closed_port()}")


def test_token_mode_without_a_token_is_named_not_taken_for_a_missing_head(tmp_path: Path, monkeypatch):
    # Ray's client aborts with a stack trace when RAY_AUTH_MODE=token finds no token; that was
    # once reported as "no Ray head there (...python(_start+0x21) ...)".
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    with pytest.raises(ConfigError, match="RAY_AUTH_MODE=token is set here but no token was found"):
        check_address(f"127.0.0.1:{_closed_port()}")


def test_a_crashed_ray_client_is_reported_with_its_reason(tmp_path: Path):
    pytest.importorskip("ray")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp_path), RAY_AUTH_MODE="token")
    probe = cluster._probe_gcs(f"127.0.0.1:{_closed_port()}", 60, env)
    assert probe["outcome"] == "crash", probe
    assert "authentication token" in probe["detail"] and "_start" not in probe["detail"], probe


def _write(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (not a Ray head)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_compare_with_a_bad_address_exits_2_with_one_line(tmp_path: Path, kind, request, cli_command):
    pytest.importorskip("ray")
    port = _closed_port() if kind == "refused" else request.getfixturevalue("silent_port")
    config = _write(tmp_path / "g.yaml", {**RUN, "model": ["tt"], "name": "g"})
    # The point is "fails, never hangs" (Ray's own wait is minutes): the subprocess timeout
    # is the bound; a clock in the test would only measure the machine's load.
    done = subprocess.run([*cli_command, "compare", "--config", str(config), "--executor", "ray", "--address",
                           f"127.0.0.1:{port}", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: --address"), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "out").exists(), "nothing is created before the cluster answers"
