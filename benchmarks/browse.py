"""Store browser benchmark: first page of a huge prefix, its memory, and selection to plot.

Prints one JSON object. For ``file://`` and for a real S3 server on loopback (SeaweedFS's
``weed mini``, the tests' server, in its own process) it measures, on a prefix holding
``--objects`` objects:

* ``first_page_s``: ``StoreBrowser(url)`` until the first page is listed and rendered;
* ``first_page_peak_mib``: peak Python memory allocated meanwhile (tracemalloc), which stays
  O(page size) when listing is paged;
* ``load_more_s``: one "load more" (the second page);
* ``full_listing_s`` / ``full_listing_peak_mib``: for contrast, fsspec's ``ls`` of the whole
  prefix (what a naive browser would do);
* ``select_to_plot_s``: ``browser.select(<real LAMOST spectrum>)`` until the spectrum viewer
  has drawn it (header read, spectrum read, plot, one Agg render of the figure), median of
  ``--repeats``.

Usage::

    python benchmarks/browse.py            # 100,000 objects
    python benchmarks/browse.py --quick    # 2,000 objects, smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
from helpers.s3 import S3Identity, SeaweedS3  # noqa: E402  (the tests' S3 server launcher)

LAMOST_LRS = REPO / "tests" / "data" / "lamost" / "spec-57287-KP193637N444141V03_sp10-161.fits.gz"
BENCH_KEY, BENCH_SECRET = "bench-key", "bench-secret"


@contextmanager
def s3_server():
    """SeaweedFS's S3 server in its own process on 127.0.0.1; yields the endpoint URL."""
    with (
        tempfile.TemporaryDirectory(prefix="astrokit-browse-s3-") as tmp,
        SeaweedS3(tmp, [S3Identity("bench", BENCH_KEY, BENCH_SECRET)]) as server,
    ):
        yield server.endpoint


def _timed_peak(fn):
    """(result, seconds, peak MiB of Python allocations) of ``fn()``."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, elapsed, peak / 2**20


def measure(store, prefix_url: str, spectrum_url: str, *, page_size: int, repeats: int) -> dict:
    from astrokit_widgets import StoreBrowser

    browser, first_s, first_peak = _timed_peak(
        lambda: StoreBrowser(prefix_url, store=store, page_size=page_size)
    )
    if browser.error:
        raise RuntimeError(browser.error)
    shown = len(browser.entries)
    start = time.perf_counter()
    browser.load_more()
    more_s = time.perf_counter() - start

    fs = store.fs
    path = prefix_url.split("://", 1)[1]
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache()
    listing, full_s, full_peak = _timed_peak(lambda: fs.ls(path, detail=True))

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        kind = browser.select(spectrum_url)
        if kind != "spectrum":
            raise RuntimeError(f"selection opened as {kind!r}: {browser.error}")
        # Headless there is no frontend to ask ipympl for a frame: render it with Agg here so
        # the time includes drawing the pixels, as the browser would get them.
        browser.spectrum_viewer.figure.canvas.draw()
        times.append(time.perf_counter() - start)
    return {
        "objects": len(listing),
        "page_size": page_size,
        "first_page_entries": shown,
        "first_page_s": round(first_s, 4),
        "first_page_peak_mib": round(first_peak, 2),
        "load_more_s": round(more_s, 4),
        "full_listing_s": round(full_s, 3),
        "full_listing_peak_mib": round(full_peak, 2),
        "select_to_plot_s": round(statistics.median(times), 4),
        "select_to_plot_all_s": [round(t, 4) for t in times],
    }


def bench_file(n: int, page_size: int, repeats: int) -> dict:
    from astrokit.store import open_store

    with tempfile.TemporaryDirectory(prefix="astrokit-browse-") as tmp:
        root = Path(tmp)
        many = root / "shared" / "many"
        many.mkdir(parents=True)
        start = time.perf_counter()
        for i in range(n):
            (many / f"obj-{i:07d}.fits").touch()
        setup = time.perf_counter() - start
        spectra = root / "shared" / "spectra"
        spectra.mkdir()
        shutil.copy(LAMOST_LRS, spectra / LAMOST_LRS.name)
        store = open_store(f"file://{root}")
        out = measure(
            store,
            f"file://{many}",
            f"file://{spectra / LAMOST_LRS.name}",
            page_size=page_size,
            repeats=repeats,
        )
        out["setup_s"] = round(setup, 2)
        return out


def bench_s3(n: int, page_size: int, repeats: int) -> dict:
    import s3fs

    from astrokit.store import open_store

    with s3_server() as endpoint:
        options = {
            "key": BENCH_KEY,
            "secret": BENCH_SECRET,
            "client_kwargs": {"endpoint_url": endpoint},
        }
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        bucket = "astrokit-bench"
        fs.mkdir(bucket)
        start = time.perf_counter()
        batch = 2000
        for lo in range(0, n, batch):
            fs.pipe(
                {
                    f"{bucket}/shared/many/obj-{i:07d}.fits": b""
                    for i in range(lo, min(n, lo + batch))
                }
            )
        setup = time.perf_counter() - start
        print(f"s3: {n} objects uploaded in {setup:.1f} s", file=sys.stderr, flush=True)
        fs.put(str(LAMOST_LRS), f"{bucket}/shared/spectra/{LAMOST_LRS.name}")
        store = open_store(f"s3://{bucket}", storage_options=options)
        out = measure(
            store,
            f"s3://{bucket}/shared/many",
            f"s3://{bucket}/shared/spectra/{LAMOST_LRS.name}",
            page_size=page_size,
            repeats=repeats,
        )
        out["setup_s"] = round(setup, 2)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 objects, one repeat")
    parser.add_argument("--objects", type=int, default=None, help="objects in the prefix")
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--backends", default="file,s3", help="comma list: file,s3")
    args = parser.parse_args(argv)
    n = args.objects or (2000 if args.quick else 100_000)
    repeats = args.repeats or (1 if args.quick else 5)
    os.environ.setdefault("MPLBACKEND", "Agg")
    result: dict = {
        "benchmark": "browse",
        "quick": args.quick,
        "objects": n,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_1min": round(os.getloadavg()[0], 2),
    }
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "file" in backends:
        result["file"] = bench_file(n, args.page_size, repeats)
        print(f"file: {json.dumps(result['file'])}", file=sys.stderr, flush=True)
    if "s3" in backends:
        result["s3"] = bench_s3(n, args.page_size, repeats)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
