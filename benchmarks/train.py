"""Demo photo-z model: does it beat predicting the mean redshift, on galaxies it never saw?

Prints one JSON object. Reproduces what ``make run`` does (``astrokit platform prepare``): a
synthetic survey of ``--galaxies`` galaxies (seed 42, as the platform seeds it), ingested into
shards, and the demo model trained with :data:`astrokit.training.DEMO_PRESET`. Then it writes
an **independent test survey** (another seed, so other galaxies, noise and redshifts), runs
:func:`astrokit.infer` over it on a local 2-worker cluster, and reports:

* ``validation``: the training run's own validation split (held out from the optimiser, but
  from the same survey) and the predict-the-training-mean baseline on that split;
* ``test``: the model's photo-z metrics on the independent survey, and those of the
  predict-the-training-mean baseline on the same rows; ``ratios`` divides model by baseline
  (smaller is better: sigma_MAD, MAE, MSE, outlier fraction);
* ``train_seconds`` and the load average (the machine may be shared);
* ``precisions``: the same training in each of ``--precisions`` (default ``fp32,auto``;
  :mod:`astrokit.models.precision`, ``auto`` is bf16 on a CPU with native bf16): training
  time, the precision chosen and why, and validation and test metrics of the weights it
  produced (every model is evaluated in fp32, so the numbers compare the weights). The
  top-level figures are the fp32 run's, which is the demo model (``model.pt``).

Usage::

    python benchmarks/train.py            # the demo preset on 6,000 galaxies, test on 2,000
    python benchmarks/train.py --quick    # tiny model, 1 epoch, a few hundred galaxies
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> dict:
    from astrokit.commands.platform import DEFAULT_GALAXIES
    from astrokit.ingest import ingest
    from astrokit.metrics import photoz_metrics
    from astrokit.survey import make_survey
    from astrokit.training import DEMO_PRESET, load_shard_arrays, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 epoch: smoke run")
    parser.add_argument("--galaxies", type=int, default=None, help="training survey size")
    parser.add_argument("--test-galaxies", type=int, default=None, help="test survey size")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: temp)")
    parser.add_argument(
        "--precisions",
        default="fp32,auto",
        help="comma-separated training precisions to compare (fp32 always runs first)",
    )
    args = parser.parse_args(argv)
    precisions = ["fp32"] + [
        p for p in dict.fromkeys(args.precisions.split(",")) if p.strip() and p != "fp32"
    ]
    galaxies = args.galaxies or (300 if args.quick else DEFAULT_GALAXIES)
    test_galaxies = args.test_galaxies or (200 if args.quick else 2000)
    preset = dict(DEMO_PRESET)
    if args.quick:
        preset.update(config="tiny", epochs=1)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="astrokit-train-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base = f"file://{work}"
    load_start = [round(x, 2) for x in os.getloadavg()]
    try:
        # the same survey seed as `astrokit platform prepare`; the test survey differs
        make_survey(f"{base}/train-survey", galaxies=galaxies, spectra=0, seed=42)
        make_survey(f"{base}/test-survey", galaxies=test_galaxies, spectra=0, seed=4242)
        from distributed import Client

        from astrokit.cluster import local_cluster

        with local_cluster(2, 1, dashboard_address=None) as cluster, Client(cluster) as client:
            ingest(f"{base}/train-survey/cutouts", f"{base}/train-shards", client=client)
            ingest(f"{base}/test-survey/cutouts", f"{base}/test-shards", client=client)
            import astrokit

            runs = {}
            for precision in precisions:
                name = "model.pt" if precision == "fp32" else f"model-{precision}.pt"
                t0 = time.perf_counter()
                trained = train(
                    f"{base}/train-shards", out=f"{base}/{name}", precision=precision, **preset
                )
                seconds = time.perf_counter() - t0
                # every model predicted in fp32: the comparison is between the weights
                result = astrokit.infer(
                    f"{base}/test-shards",
                    model=f"{base}/{name}",
                    out=f"{base}/test-pred-{precision}",
                    client=client,
                    precision="fp32",
                    progress=False,
                )
                runs[precision] = (trained, seconds, result.to_pandas(), result)
        trained, train_seconds, catalog, result = runs["fp32"]
        z_mean = float(np.mean(load_shard_arrays(f"{base}/train-shards")["z"]))

        def test_metrics(catalog):
            # rows with a prediction (bad inputs are reported, not predicted) and a known z
            known = catalog[np.isfinite(catalog["z_true"]) & np.isfinite(catalog["z_pred"])]
            return known, photoz_metrics(known["z_pred"].to_numpy(), known["z_true"].to_numpy())

        known, model_test = test_metrics(catalog)
        baseline_test = photoz_metrics(np.full(len(known), z_mean), known["z_true"].to_numpy())
        by_precision = {
            precision: {
                "precision": run[0].precision,
                "train_seconds": round(run[1], 1),
                "validation_sigma_mad": round(run[0].metrics["val"]["sigma_mad"], 5),
                "test": {
                    k: round(v, 5) if isinstance(v, float) else v
                    for k, v in test_metrics(run[2])[1].items()
                },
            }
            for precision, run in runs.items()
        }
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    def rounded(metrics: dict) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()}

    ratios = {
        key: round(model_test[key] / baseline_test[key], 3) if baseline_test[key] else None
        for key in ("sigma_mad", "mae", "mse", "outlier_fraction")
    }
    return {
        "benchmark": "train (demo photo-z model vs predicting the mean)",
        "quick": args.quick,
        "preset": preset,
        "train_galaxies": galaxies,
        "n_train": trained.metrics["n_train"],
        "n_val": trained.metrics["n_val"],
        "train_seconds": round(train_seconds, 1),
        "validation": {
            "model": rounded(trained.metrics["val"]),
            "baseline_mean": rounded(trained.metrics["baseline_mean"]),
        },
        "test": {
            "survey_seed": 4242,
            "rows": int(result.summary["n_rows"]),
            "model": rounded(model_test),
            "baseline_mean": rounded(baseline_test),
            "ratios_model_to_baseline": ratios,
        },
        "precisions": by_precision,
        "cpus": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    print(json.dumps(main(), default=float))
