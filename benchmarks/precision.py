"""What runs the photo-z model fastest on this machine, and what each option costs in parity.

Prints one JSON object. In one process, on one batch of ``--batch-size`` synthetic galaxies
with the model on ``--threads`` threads, best of ``--repeats`` forward passes each:

* ``eager``: fp32; bf16 autocast with only the ViT in bf16 (AstroMAE's default
  ``reduced_precision_parts``); bf16 autocast with every part in bf16;
* ``channels_last``: the same three with the whole model and its input in channels_last
  (the Inception branch already converts its own input, see ``astromae.InceptionBranch``);
* ``compile`` (``--compile``): ``torch.compile`` of the ViT-in-bf16 model -- the first call's
  time (the one-off cost a worker process would pay) and the steady rate after it.

``parts`` (with ``--demo-dir``, a ``benchmarks/train.py --workdir`` directory): the largest
and median |z_bf16 - z_fp32| over the trained demo model's independent test survey for each
choice of the parts that run in bf16 -- the measurement behind AstroMAE's default.

Every figure is samples/s; the load average before and after is recorded (the machine may be
shared, and a loaded host hurts multi-threaded eager runs most).

Usage::

    python benchmarks/precision.py --compile --demo-dir DIR     # full AstroMAE, ~5-10 min
    python benchmarks/precision.py --quick                       # tiny model, no compile
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

ALL_PARTS = ("vit", "inception", "magnitudes", "head")


def rate(fn: Callable[[], Any], batch: int, repeats: int) -> float:
    """Samples/s of ``fn`` (one batch per call): one warm-up call, then the best of runs."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return batch / best


def demo_parts_parity(demo_dir: str) -> dict[str, Any]:
    """max/median |z_bf16 - z_fp32| on the demo model's test survey for each set of parts."""
    from astrokit.models.checkpoint import load_checkpoint
    from astrokit.models.precision import PrecisionChoice, fp32_choice
    from astrokit.models.runtime import predict_arrays, screen_inputs
    from astrokit.training import load_shard_arrays

    root = Path(demo_dir).resolve()
    model = load_checkpoint((root / "model.pt").as_uri()).model
    data = load_shard_arrays((root / "test-shards").as_uri())
    screened = screen_inputs(data["images"], data["mags"])
    images, mags = screened.images[screened.ok], screened.mags[screened.ok]
    reference = predict_arrays(model, images, mags, precision=fp32_choice())
    bf16 = PrecisionChoice("bf16", "bf16", "cpu", "benchmark")
    out: dict[str, Any] = {"rows": len(images)}
    for parts in (
        ("vit",),
        ("vit", "head"),
        ("vit", "inception"),
        ("vit", "magnitudes"),
        ALL_PARTS,
    ):
        model.reduced_precision_parts = parts
        dz = np.abs(predict_arrays(model, images, mags, precision=bf16) - reference)
        out["+".join(parts)] = {
            "max_abs_dz": float(dz.max()),
            "median_abs_dz": float(np.median(dz)),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 repeat")
    parser.add_argument("--config", default=None, help="model config (default astromae)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = a worker)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (quick: 1)")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile")
    parser.add_argument("--demo-dir", default=None, help="benchmarks/train.py --workdir DIR")
    args = parser.parse_args(argv)

    import torch

    from astrokit.models.astromae import AstroMAE, count_flops

    sys.path.insert(0, str(REPO / "benchmarks"))
    from infer import cpu_description, make_data

    config = args.config or ("tiny" if args.quick else "astromae")
    repeats = args.repeats or (1 if args.quick else 5)
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    arrays = make_data(args.batch_size, seed=3)
    x = torch.from_numpy(arrays["images"])
    m = torch.from_numpy(arrays["mags"])
    torch.manual_seed(0)
    model = AstroMAE(config).eval()
    model.set_normalization(x, m, torch.from_numpy(arrays["z"]))
    flops = count_flops(model)

    def forward(net: Any, images: Any, parts: tuple[str, ...], bf16: bool) -> Callable[[], Any]:
        def call() -> Any:
            net.reduced_precision_parts = parts
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return net(images, m)

        return call

    results: dict[str, Any] = {}
    with torch.inference_mode():
        reference = model(x, m)
        for layout in ("eager", "channels_last"):
            net, images = model, x
            if layout == "channels_last":
                net = AstroMAE(config).eval()
                net.load_state_dict(model.state_dict())
                net = net.to(memory_format=torch.channels_last)
                images = x.contiguous(memory_format=torch.channels_last)
            results[layout] = {
                "fp32": rate(forward(net, images, ("vit",), False), args.batch_size, repeats),
                "bf16_vit": rate(forward(net, images, ("vit",), True), args.batch_size, repeats),
                "bf16_all": rate(forward(net, images, ALL_PARTS, True), args.batch_size, repeats),
            }
        if args.compile:
            compiled = torch.compile(model)
            t0 = time.perf_counter()
            forward(compiled, x, ("vit",), True)()
            first = time.perf_counter() - t0
            steady = rate(forward(compiled, x, ("vit",), True), args.batch_size, repeats)
            z = forward(compiled, x, ("vit",), True)().float()
            eager_again = rate(forward(model, x, ("vit",), True), args.batch_size, repeats)
            results["compile"] = {
                "first_call_s": first,
                "bf16_vit": steady,
                "eager_bf16_vit_after": eager_again,
                "max_abs_dz_vs_eager_fp32": float((z - reference).abs().max()),
            }
    report = {
        "benchmark": "precision",
        "quick": args.quick,
        "config": config,
        "flops_per_sample": flops,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "repeats": repeats,
        "cpu": cpu_description(),
        "samples_per_s": results,
        "parts_parity_on_demo_model": demo_parts_parity(args.demo_dir) if args.demo_dir else None,
        "torch": torch.__version__,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    return report


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
