"""Training with and without the CUDA-graph step: the same numbers, and how much faster.

    python benchmarks/gpu_graph_check.py --out /tmp/graph_check [--json out.json]

Trains each case twice from the same seed, once with ``cuda_graph: true`` (the
default) and once with ``false``, on MNIST (``TENSORRNN_DATA``), and prints per
case whether every epoch's training loss and validation accuracy are equal to the
last digit, the test accuracies, and the seconds per epoch of both. Cases: the long
chain of issue 23 (d = 784 pixels, cos-sin n = 2, TT-shared r = 100, B = 512,
sequential schedule), and the d = 196 chain (2×2 patches, r = 32) under ``auto``
(the tree on CUDA). Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from tensorrnn.train import RunConfig, train_run

CASES = {
    "d784_r100_sequential": dict(
        patch=1,
        feature_map="cos-sin",
        feature_dim=None,
        model="tt-shared",
        rank=100,
        batch_size=512,
        schedule="sequential",
        epochs=2,
        train_limit=20000,
    ),
    "d196_r32_auto": dict(
        patch=2,
        feature_map="affine-relu",
        feature_dim=4,
        model="tt-shared",
        rank=32,
        batch_size=128,
        schedule="auto",
        epochs=2,
        train_limit=20000,
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/graph_check")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_graph_check.py needs a CUDA device")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    print(
        "| case | epochs equal (train loss, val acc) | test acc graph / eager "
        "| s/epoch graph / eager | speed |"
    )
    print("|---|---|---|---|---:|")
    rows = []
    for name, settings in CASES.items():
        runs = {}
        for graph in (True, False):
            config = RunConfig.from_mapping({"dataset": "mnist", "seed": 0, "cuda_graph": graph, **settings})
            folder = out / f"{name}_{'graph' if graph else 'eager'}"
            result = train_run(config, folder, quiet=True)
            metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
            runs[graph] = (result, metrics)
        (rg, mg), (re, me) = runs[True], runs[False]
        equal = all(
            a["train_loss"] == b["train_loss"] and a["val_accuracy"] == b["val_accuracy"]
            for a, b in zip(mg, me, strict=True)
        )
        sg = sum(m["seconds"] for m in mg) / len(mg)
        se = sum(m["seconds"] for m in me) / len(me)
        row = {
            "case": name,
            **settings,
            "equal": equal,
            "test_graph": rg["test_accuracy"],
            "test_eager": re["test_accuracy"],
            "seconds_per_epoch_graph": sg,
            "seconds_per_epoch_eager": se,
            "train_loss_graph": [m["train_loss"] for m in mg],
            "train_loss_eager": [m["train_loss"] for m in me],
            "graph_recorded": [
                json.loads(x).get("cuda_graph")
                for x in (out / f"{name}_graph" / "provenance.jsonl").read_text().splitlines()
            ],
        }
        rows.append(row)
        print(
            f"| {name} | {'yes' if equal else 'NO'} | {rg['test_accuracy']:.4f} / {re['test_accuracy']:.4f} "
            f"| {sg:.2f} / {se:.2f} | {se / sg:.2f}× |",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=1
            )
        )


if __name__ == "__main__":
    main()
