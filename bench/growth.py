"""Function-preserving growth in the main job: examples/digits.config with copy mode "subset" (the baseline: the
inserted layer starts from its fresh init), "preserve" (as shipped) and "net2wider".

Each growth (epochs 3 and 5) is checked on the dev set (verify_inputs, tolerance lifted so that "subset" reports
instead of failing). Printed per mode, as medians over the seeds (rounds interleaved: seed by seed, each mode):
the dev error before -> right after each growth, the training loss of the growth epochs, the final dev error.

    python bench/growth.py [--seeds 42 43 44] [--epochs 24]
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import re
import statistics
import sys
import tempfile

# This directory holds a file named like the package's modules: drop it from the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "digits.config")
MODES = ("subset", "preserve", "net2wider")


def run(mode: str, seed: int, epochs: int, workdir: str) -> dict[str, float]:
    from transition.training._config import load_config
    from transition.training._loop import train_from_config

    cfg = load_config(CONFIG)
    over: dict = {"model": os.path.join(workdir, f"{mode}-{seed}", "net"), "num_epochs": epochs,
                  "random_seed": seed, "verify_tolerance": 1e9}
    if mode != "preserve":  # the baseline has no hand-written hooks either: the output layer's importer goes
        net = copy.deepcopy(dict(cfg["network"]))
        net["output"] = {k: v for k, v in net["output"].items() if k != "custom_param_importer"}
        over["network"] = net
        over["pretrain"] = dict(cfg["pretrain"], copy_param_mode=mode)
    out = io.StringIO()
    train_from_config(cfg, over, out=out)
    lines = {int(m.group(1)): line for line in out.getvalue().splitlines() if (m := re.match(r"epoch (\d+)/", line))}
    result = {"final dev_error": float(re.search(r"dev_error (\S+)", lines[max(lines)]).group(1))}
    for epoch in (3, 5):
        kept = re.search(r"output error (\S+) -> (\S+)", lines[epoch])
        result[f"dev_error before growth {epoch}"] = float(kept.group(1))
        result[f"dev_error after growth {epoch}"] = float(kept.group(2))
        result[f"train_score epoch {epoch}"] = float(re.search(r"train_score (\S+)", lines[epoch]).group(1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--epochs", type=int, default=24)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:
            for mode in MODES:
                results[mode].append(run(mode, seed, args.epochs, workdir))
    print(f"main job, {args.epochs} epochs, medians over seeds {args.seeds}")
    print(f"{'mode':10} {'growth 3: dev_error':>22} {'growth 5: dev_error':>22} {'train_score ep 3 / 5':>21} "
          f"{'final dev_error':>16}")
    for mode, rows in results.items():
        med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        g3 = f"{med['dev_error before growth 3']:.4f} -> {med['dev_error after growth 3']:.4f}"
        g5 = f"{med['dev_error before growth 5']:.4f} -> {med['dev_error after growth 5']:.4f}"
        ts = f"{med['train_score epoch 3']:.3f} / {med['train_score epoch 5']:.3f}"
        print(f"{mode:10} {g3:>22} {g5:>22} {ts:>21} {med['final dev_error']:>16.4f}")


if __name__ == "__main__":
    main()
