"""benchmarks/browse.py --quick runs and prints the JSON it promises (so it does not rot)."""

from __future__ import annotations

import pytest
from helpers.benchmarks import run_benchmark


@pytest.mark.s3
def test_browse_benchmark_quick():
    result = run_benchmark("browse", "--quick", "--objects", "600")  # it sets MPLBACKEND=Agg
    for backend in ("file", "s3"):
        numbers = result[backend]
        assert numbers["objects"] == 600
        assert numbers["first_page_entries"] == 200  # one page, not the whole prefix
        assert 0 < numbers["first_page_s"] < 60
        assert numbers["first_page_peak_mib"] > 0
        assert 0 < numbers["select_to_plot_s"] < 60
