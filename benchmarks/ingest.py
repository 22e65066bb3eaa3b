"""Benchmark: ingest throughput (1 and 2 workers) and memory of paged listing.

Prints one JSON object on stdout:

* ``survey``: how many cutouts were generated, MB, seconds (``make_survey``, not timed
  as ingest);
* ``ingest``: for 1 and 2 Dask workers (processes, 1 thread each, on 127.0.0.1): wall
  seconds of :func:`astrokit.ingest.ingest` (cluster start-up excluded), files/s, input MB/s,
  shards, rows. Each is run ``--repeats`` times (default 5), 1 and 2 workers alternating in
  turn (1,2 then 2,1, ...) so that a drift of the machine's speed hits both alike, each on a
  fresh cluster into a fresh folder: ``seconds`` is the median and ``seconds_runs`` every
  run; ``speedup_2_vs_1`` is the median of the runs' ratios (run ``k`` of 1 worker over run
  ``k`` of 2), ``speedup_2_vs_1_runs`` each. One run's ratio varies by a few percent on the
  2-vCPU hosts this project runs on (1.67-1.95 in one session), which is why one run is not
  quoted, and the median of 3 still moved by 0.04 between invocations: hence 5;
* ``machine_ceiling``: the same per-file reading done by one plain process, then by two at
  once (no Dask): the most a second worker can add on this machine. On the 2-vCPU hosts this
  project runs on, two processes of this Python-heavy work (astropy header parsing) gain
  well under 2x even when a tight loop gains 1.96x; ``speedup_vs_ceiling`` is ingest's
  speed-up as a fraction of it;
* ``listing``: a directory of ``--objects`` empty files listed through
  :meth:`Store.list_page`, for one 1000-entry page and for walking every page, against
  ``os.listdir`` of the same directory for reference. Two memory figures per phase:
  ``*_peak_traced_mib`` is tracemalloc's peak of *Python allocations* made during the phase
  (what the listing itself holds; excludes the interpreter and C libraries), and
  ``*_peak_rss_mib`` the process's resident-set high-water mark during the phase (Linux:
  ``VmHWM`` after resetting it through ``/proc/self/clear_refs``; elsewhere the larger of
  the RSS before and after, from psutil), which includes the interpreter and everything
  imported -- ``rss_baseline_mib`` is the RSS before listing, for comparison.

Usage: ``python benchmarks/ingest.py [--quick] [--galaxies N] [--objects M] [--repeats R]
[--workdir D]``. ``--quick`` is a smoke run (a few hundred files, one repeat) used by the
test-suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIB = 2**20


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / MIB


def _reset_rss_peak() -> bool:
    """Reset the kernel's RSS high-water mark of this process (Linux >= 4.0); True if done."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _rss_peak_mib() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _measure(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, seconds, tracemalloc peak MiB, RSS peak MiB) of ``fn()``.

    tracemalloc is started inside the RSS window, so its own bookkeeping is part of the RSS
    figure -- a small overestimate, on the safe side for a "memory stays bounded" claim.
    """
    before = _rss_mib()
    exact = _reset_rss_peak()
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = _rss_peak_mib() if exact else None
    rss = hwm if hwm is not None else max(before, _rss_mib())
    return result, seconds, traced / MIB, rss


def _ingest_run(src: str, dst: str, workers: int, partition_mb: float) -> dict:
    """One timed ingest into the fresh folder ``dst`` (removed afterwards)."""
    from distributed import Client

    from astrokit.cluster import local_cluster
    from astrokit.ingest import ingest

    with (
        local_cluster(workers, 1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers, timeout=120)
        t0 = time.perf_counter()
        report = ingest(src, dst, partition_mb=partition_mb, client=client)
        wall = time.perf_counter() - t0
    shutil.rmtree(dst.removeprefix("file://"))
    return {
        "workers": workers,
        "seconds": round(wall, 3),
        "files": report.files,
        "rows": report.good_rows,
        "bad": len(report.bad),
        "shards": report.shards,
        "files_per_s": round(report.files / wall, 1),
        "mb_per_s": round(report.bytes_in / 1e6 / wall, 2),
        "input_mb": round(report.bytes_in / 1e6, 1),
        "output_mb": round(report.bytes_out / 1e6, 1),
    }


def _median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (the lower middle one of an even count), with every
    run's seconds as ``seconds_runs``."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "seconds_runs": [r["seconds"] for r in runs]}


def _read_group(src: str, group: Any) -> int:
    from astrokit.ingest import read_cutouts

    return len(read_cutouts(None, src, group, (32, 32), 0.05).ids)


def _warm(_: int) -> int:
    import astrokit.ingest  # noqa: F401  (the imports a Dask worker has done before its tasks)

    return os.getpid()


def _ceiling(src: str, files: int, repeats: int = 3) -> dict:
    """The machine's own 1 -> 2 process speed-up on ingest's per-file work, without Dask.

    ``files`` cutouts are read with ``read_cutouts`` (an ingest task's reading half, nearly all
    of its CPU) by one process, then by two processes at once, half each; fork-server
    processes, warmed up first, as Dask's workers are. Best of ``repeats`` for each. This is
    the most two workers could gain over one on this machine, whatever the scheduling.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from astrokit.partitions import group_files, list_fits
    from astrokit.store import open_store

    store = open_store(src.rsplit("/", 2)[0])
    entries = ((e.name, e.size) for e in list_fits(store, src))
    halves = list(group_files(entries, files // 2))[:2]
    context = multiprocessing.get_context("forkserver")
    best = {1: float("inf"), 2: float("inf")}
    with (
        ProcessPoolExecutor(1, mp_context=context) as one,
        ProcessPoolExecutor(2, mp_context=context) as two,
    ):
        list(one.map(_warm, [0]))
        list(two.map(_warm, [0, 1]))
        for _ in range(repeats):
            for pool, n in ((one, 1), (two, 2)):
                t0 = time.perf_counter()
                read = sum(pool.map(_read_group, [src, src], halves))
                best[n] = min(best[n], time.perf_counter() - t0)
                assert read == sum(g.rows for g in halves), read
    return {
        "files": sum(g.rows for g in halves),
        "one_process_s": round(best[1], 3),
        "two_processes_s": round(best[2], 3),
        "speedup_2_vs_1": round(best[1] / best[2], 2),
        "repeats": repeats,
    }


def _listing(workdir: Path, objects: int) -> dict:
    from astrokit.store import open_store

    d = workdir / "listing"
    d.mkdir()
    t0 = time.perf_counter()
    for i in range(objects):
        (d / f"obj-{i:07d}.fits").touch()
    made = time.perf_counter() - t0
    store = open_store(f"file://{workdir}")
    url = store.join("listing")
    baseline = _rss_mib()
    rss_method = "VmHWM" if _reset_rss_peak() and _rss_peak_mib() else "psutil before/after"

    page, one_page_s, one_page_traced, one_page_rss = _measure(
        lambda: store.list_page(url, limit=1000)
    )

    def walk() -> tuple[int, int]:
        count, after, pages = 0, None, 0
        while True:
            p = store.list_page(url, limit=1000, after=after)
            count += len(p.entries)  # entries are dropped after counting: a streaming consumer
            pages += 1
            if p.next_after is None:
                return count, pages
            after = p.next_after

    (count, pages), walk_s, walk_traced, walk_rss = _measure(walk)
    names, _, listdir_traced, listdir_rss = _measure(lambda: os.listdir(d))
    assert count == objects == len(names), (count, objects, len(names))
    del names, page
    return {
        "objects": objects,
        "create_seconds": round(made, 2),
        "page_limit": 1000,
        "rss_baseline_mib": round(baseline, 1),
        "rss_peak_method": rss_method,
        "one_page_seconds": round(one_page_s, 3),
        "one_page_peak_traced_mib": round(one_page_traced, 3),
        "one_page_peak_rss_mib": round(one_page_rss, 1),
        "all_pages": pages,
        "all_pages_seconds": round(walk_s, 2),
        "all_pages_peak_traced_mib": round(walk_traced, 3),
        "all_pages_peak_rss_mib": round(walk_rss, 1),
        "os_listdir_peak_traced_mib": round(listdir_traced, 3),
        "os_listdir_peak_rss_mib": round(listdir_rss, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--galaxies", type=int, default=None, help="cutouts (default 20000)")
    parser.add_argument("--objects", type=int, default=None, help="listing size (default 1e5)")
    parser.add_argument("--partition-mb", type=float, default=None, help="shard size MB")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 5)")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: tmp)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    galaxies = args.galaxies or (300 if args.quick else 20_000)
    objects = args.objects or (3_000 if args.quick else 100_000)
    partition_mb = args.partition_mb or (1.0 if args.quick else 25.0)

    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from astrokit.survey import make_survey

    workdir = Path(tempfile.mkdtemp(prefix="astrokit-bench-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        summary = make_survey(f"file://{workdir}/survey", galaxies=galaxies, spectra=0, seed=1)
        survey = {
            "galaxies": galaxies,
            "mb": round(summary.bytes_written / 1e6, 1),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        src = f"file://{workdir}/survey/cutouts"
        timed: dict[int, list[dict]] = {1: [], 2: []}
        for k in range(repeats):
            for w in (1, 2) if k % 2 == 0 else (2, 1):
                dst = f"file://{workdir}/shards-{w}-{k}"
                timed[w].append(_ingest_run(src, dst, w, partition_mb))
        runs = [_median_run(timed[w]) for w in (1, 2)]
        ratios = [a["seconds"] / b["seconds"] for a, b in zip(timed[1], timed[2], strict=True)]
        ceiling = _ceiling(src, min(galaxies, 4000))
        listing = _listing(workdir, objects)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "benchmark": "ingest",
        "quick": args.quick,
        "partition_mb": partition_mb,
        "cpu_count": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "survey": survey,
        "repeats": repeats,
        "ingest": runs,
        "speedup_2_vs_1": round(statistics.median(ratios), 2),
        "speedup_2_vs_1_runs": [round(r, 3) for r in ratios],
        "machine_ceiling": ceiling,
        "speedup_vs_ceiling": round(statistics.median(ratios) / ceiling["speedup_2_vs_1"], 2),
        "listing": listing,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
