"""``benchmarks/train.py --quick`` trains, predicts an independent survey and reports both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "train.py"


def test_train_benchmark_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["preset"]["config"] == "tiny" and report["preset"]["epochs"] == 1
    assert report["n_train"] + report["n_val"] <= report["train_galaxies"] == 300
    test = report["test"]
    assert test["rows"] == 200
    # every test row with a prediction is scored, for the model and the baseline alike
    assert test["model"]["n"] == test["baseline_mean"]["n"] > 150
    for key in ("sigma_mad", "mae", "mse", "outlier_fraction"):
        ratio = test["ratios_model_to_baseline"][key]
        assert ratio is None or ratio >= 0
        assert key in report["validation"]["model"]
