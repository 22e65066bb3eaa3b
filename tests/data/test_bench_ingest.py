"""``benchmarks/ingest.py --quick`` still runs and prints the documented JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "ingest.py"


def test_ingest_benchmark_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--galaxies", "120", "--objects", "1500",
         "--repeats", "2", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["benchmark"] == "ingest"
    assert [r["workers"] for r in result["ingest"]] == [1, 2]
    for run in result["ingest"]:
        assert run["files"] == run["rows"] == 120 and run["bad"] == 0
        assert run["files_per_s"] > 0 and run["mb_per_s"] > 0
        assert len(run["seconds_runs"]) == 2 and run["seconds"] in run["seconds_runs"]
    assert result["repeats"] == 2 and len(result["speedup_2_vs_1_runs"]) == 2
    ceiling = result["machine_ceiling"]
    assert ceiling["files"] == 120 and ceiling["speedup_2_vs_1"] > 0
    assert result["speedup_vs_ceiling"] > 0
    listing = result["listing"]
    assert listing["objects"] == 1500 and listing["all_pages"] == 2
    # Python-allocation peaks (tracemalloc) and process RSS high-water marks, named as such
    for phase in ("one_page", "all_pages", "os_listdir"):
        assert listing[f"{phase}_peak_traced_mib"] > 0
        assert listing[f"{phase}_peak_rss_mib"] >= listing[f"{phase}_peak_traced_mib"]
    assert listing["rss_baseline_mib"] > 0 and not any(k.endswith("_peak_mb") for k in listing)
    assert list(tmp_path.iterdir()) == []  # scratch space cleaned up
