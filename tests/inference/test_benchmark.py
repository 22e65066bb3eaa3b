"""``benchmarks/infer.py --quick`` runs and reports every path it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "infer.py"


def test_infer_benchmark_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--samples", "256", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["samples"] == 256 and report["config"] == "tiny"
    for path in ("baseline", "baseline_1thread", "distributed_1w", "distributed_2w"):
        assert report[path]["samples"] == 256
        assert report[path]["samples_per_s"] > 0
        assert report[path]["gflop_per_s"] > 0
    assert report["distributed_1w"]["exact"] and report["distributed_2w"]["exact"]
    assert report["distributed_2w"]["workers"] == 2
    assert report["flops_per_sample"] > 1e6
    assert report["ratio_2w_to_baseline"] > 0 and report["scaling_1w_to_2w"] > 0
    assert set(report["targets"]) == {"2w_within_5pct_of_baseline", "scaling_at_least_1.8x"}
    # explicit booleans, consistent with the ratios they judge
    targets = report["targets"]
    assert targets["2w_within_5pct_of_baseline"] is (report["ratio_2w_to_baseline"] >= 0.95)
    assert targets["scaling_at_least_1.8x"] is (report["scaling_1w_to_2w"] >= 1.8)
