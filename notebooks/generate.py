"""Write the teaching notebooks (``notebooks/NN-*.ipynb``) from the cell text below.

The notebooks are generated rather than edited by hand so that they stay small, reviewable in
a diff, and free of outputs (outputs are never committed). Run it after changing a cell::

    .venv/bin/python notebooks/generate.py          # rewrite the notebooks
    .venv/bin/python notebooks/generate.py --check  # exit 1 if a notebook is out of date

``tests/notebooks`` runs every notebook top to bottom with nbclient against a real local Dask
cluster and a seeded store, and checks that the committed files equal this script's output.

Conventions for the cells: a notebook reads everything from the environment the hub's spawner
sets (``ASTROKIT_*``, ``DASK_SCHEDULER_ADDRESS`` and the TLS variables), never from a path
written into the notebook; ``ASTROKIT_NOTEBOOK_QUICK=1`` shrinks the expensive steps so that
the test suite runs each notebook in well under a minute.
"""

# The cells' markdown uses typographic symbols (sigma, minus and dashes) on purpose: it is read
# by people, not parsed.
# ruff: noqa: RUF001

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str, *, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = new_code_cell(textwrap.dedent(text).strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# ---------------------------------------------------------------------------------------------
QUICKSTART = [
    md(
        """
        # 1 · Quickstart: your own Dask cluster

        When the hub started this server it also started a **Dask cluster for you alone**: a
        scheduler and the workers of the profile you picked, talking over TLS with credentials
        made for this server. Nobody else's code can join it, and it stops when your server
        stops.

        In this notebook you will

        1. connect to the cluster — with no arguments,
        2. open its dashboard through the hub,
        3. see how big it is and how it scales,
        4. run a first computation on the shared survey.
        """
    ),
    md(
        """
        ## 1. Connect

        `astrokit.connect()` reads what the hub put in this server's environment (the
        scheduler's address, the TLS certificate files and the number of workers in your
        profile) and waits until all the workers are there. A plain `distributed.Client()`
        would connect too; `connect()` adds clear error messages and wakes a cluster that
        released its workers while you were away.
        """
    ),
    code(
        """
        import os

        import astrokit

        client = astrokit.connect()
        client
        """
    ),
    md(
        """
        ## 2. Watch it: the dashboard

        The Dask dashboard shows every task as it runs, the memory of each worker and the
        progress of long computations. Its link goes **through the hub**
        (`/user/<you>/proxy/<port>/status`), so your hub login protects it and it works from
        wherever you reach the hub. Open it in a new browser tab and keep it beside this
        notebook while the next cells run.
        """
    ),
    code(
        """
        from IPython.display import HTML

        from astrokit.connect import dashboard_link

        link = dashboard_link() or client.dashboard_link  # the hub's link, else Dask's own
        anchor = f'<a class="astrokit-dashboard" href="{link}" target="_blank">'
        HTML(f"{anchor}Dask dashboard: {link}</a>")
        """
    ),
    md(
        """
        ## 3. How big is it, and how does it scale?

        The profile you chose on the hub's spawn page fixed the cluster's **maximum** size:
        the number of workers, the threads of each and the memory each may use (a worker that
        goes over its limit is restarted, not your notebook). The table below comes from the
        scheduler itself.
        """
    ),
    code(
        """
        workers = client.scheduler_info(n_workers=-1)["workers"]
        for address, info in sorted(workers.items()):
            print(
                f"worker {info['name']!s:>3}  {address:<28} threads={info['nthreads']}  "
                f"memory limit={info['memory_limit'] / 2**30:.2f} GiB"
            )
        print(f"{len(workers)} workers, {sum(client.nthreads().values())} threads in all")
        print("profile:", os.environ.get("ASTROKIT_PROFILE", "(not started by the hub)"))
        """
    ),
    md(
        """
        Scaling is automatic between zero and that maximum: when your cluster sits idle (the
        platform's default is 10 minutes) it **releases its workers** so that their memory goes
        back to everyone, and `astrokit.connect()` **scales it back up** to your profile's size
        the next time you connect. You can also scale it yourself, anywhere between zero and
        your profile's size, with `scale_cluster()`. The cell below does both: it releases all
        but one worker now (as the idle timer would), then lets `connect()` bring the rest back,
        counting the workers at each step. To get a *bigger* cluster, stop your server from the
        hub's control panel and start it again with a larger profile.
        """
    ),
    code(
        """
        from astrokit.connect import ConnectError, scale_cluster


        def count_workers():
            return len(client.scheduler_info(n_workers=-1)["workers"])


        profile_workers = int(os.environ["ASTROKIT_N_WORKERS"])
        print(f"before: {count_workers()} workers")
        try:
            scale_cluster(client, 1)  # returns once exactly one worker is left
            print(f"after scale_cluster(client, 1): {count_workers()} worker")
        except ConnectError as exc:  # e.g. on Kubernetes the cluster keeps the profile's size
            print(f"not scaled: {exc}")

        client.close()
        client = astrokit.connect()  # scales back to the profile's size, and waits for it
        n_workers = count_workers()
        print(f"after astrokit.connect(): {n_workers} workers ready")
        assert n_workers == profile_workers, (n_workers, profile_workers)
        """
    ),
    md(
        """
        ## 4. A first computation on the survey

        The shared, read-only survey area holds galaxy cutouts packed into **shards**: files
        of about 25 MB, each holding thousands of 5-band (ugriz) 32×32 images with their
        magnitudes and redshifts, plus a `manifest.json` that lists them with row counts and
        checksums.
        """
    ),
    code(
        """
        from astrokit.shards import Manifest

        shards_url = os.environ["ASTROKIT_SHARED_URL"] + "/survey/shards"
        manifest = Manifest.load(shards_url)
        print(f"{manifest.total_rows} galaxies in {len(manifest.shards)} shards at {shards_url}")
        """
    ),
    md(
        """
        We send **one task per shard** to the cluster. Each task runs on a worker, reads its
        shard straight from the store (the data never passes through this notebook), and
        returns a few numbers: how many galaxies fall in each redshift bin and the sum of
        their g − r colours. Only those small sums come back; we add them up here. Watch the
        dashboard while it runs.
        """
    ),
    code(
        """
        import numpy as np

        Z_BINS = np.linspace(0.0, 0.7, 8)


        def colour_by_redshift(url):
            \"\"\"Runs on a worker: g - r colour sums per redshift bin for one shard.\"\"\"
            import distributed

            from astrokit.shards import read_shard

            shard = read_shard(url)
            z, mags = shard["z"], shard["mags"]
            good = np.isfinite(z) & np.isfinite(mags).all(axis=1)
            which = np.clip(np.digitize(z[good], Z_BINS) - 1, 0, len(Z_BINS) - 2)
            n_bins = len(Z_BINS) - 1
            return {
                "worker": distributed.get_worker().name,
                "rows": len(z),
                "count": np.bincount(which, minlength=n_bins),
                "g_r": np.bincount(which, weights=mags[good, 1] - mags[good, 2], minlength=n_bins),
            }


        urls = [f"{shards_url}/{shard.name}" for shard in manifest.shards]
        keys = [f"colour-{shard.name}" for shard in manifest.shards]  # task names on the dashboard
        futures = client.map(colour_by_redshift, urls, key=keys)
        parts = client.gather(futures)

        count = sum(p["count"] for p in parts)
        mean_g_r = sum(p["g_r"] for p in parts) / np.maximum(count, 1)
        workers_used = sorted({p["worker"] for p in parts})
        print(f"{sum(p['rows'] for p in parts)} galaxies read by workers {workers_used}")
        for lo, hi, n, colour in zip(Z_BINS[:-1], Z_BINS[1:], count, mean_g_r):
            print(f"  {lo:.1f} <= z < {hi:.1f}: {n:6d} galaxies, mean g - r = {colour:+.3f}")
        """
    ),
    code(
        """
        import matplotlib.pyplot as plt

        centres = (Z_BINS[:-1] + Z_BINS[1:]) / 2
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(centres[count > 0], mean_g_r[count > 0], "o-")
        ax.set_xlabel("redshift z")
        ax.set_ylabel("mean g − r colour [mag]")
        ax.set_title("Colour against redshift, computed by the workers")
        plt.show()
        """
    ),
    md(
        """
        The colour changes systematically with redshift: the farther a galaxy, the more its
        light is stretched to longer wavelengths, and features such as the 4000 Å break move
        from one band into the next. That colour–redshift relation (with the magnitudes and
        the galaxy's size) is what a photometric-redshift model learns — notebook 3.

        **Next:** `02-browse-and-plot` — browse the store and look at spectra and cutouts.
        """
    ),
]

# ---------------------------------------------------------------------------------------------
BROWSE = [
    md(
        """
        # 2 · Browse the store, plot spectra and cutouts

        Everything the platform knows lives in an **object store** (a directory on the embedded
        default, an S3 bucket on a larger installation):

        * `shared/` — the survey: spectra, galaxy cutouts, catalogues, models. **Read-only**.
        * `users/<you>/` — your own area: results, checkpoints, anything you write.

        The widgets below work on both kinds of store; paths are URLs (`file://…`, `s3://…`).
        """
    ),
    code(
        """
        %matplotlib widget
        import io

        import pandas as pd

        from astrokit.store import open_store
        from astrokit_widgets import CutoutViewer, SpectrumViewer, StoreBrowser

        store = open_store()  # the store the hub configured for this server
        print(store)
        print("shared area:", store.shared_url)
        print("your area:  ", store.user_url)
        """
    ),
    md(
        """
        ## The store browser

        Click through the folders; picking a FITS file shows its header and opens a spectrum
        in the spectrum viewer or a cutout in the cutout viewer. Big folders are listed a page
        at a time (“load more”), so a prefix with 100,000 objects opens as fast as one with 10.
        The filter box takes plain text (`emission`) or a glob (`*.fits`).
        """
    ),
    code(
        """
        browser = StoreBrowser()
        browser
        """
    ),
    md(
        """
        Everything the browser does on a click it also does from code — handy to script it,
        and how the tests check it. Here we go into the survey's spectra and pick the first
        file; the preview above updates.
        """
    ),
    code(
        """
        browser.navigate(f"{store.shared_url}/survey/spectra")
        more = "(more pages)" if browser.has_more else ""
        print(f"{len(browser.entries)} entries on the first page", more)
        first = next(entry for entry in browser.entries if entry.kind == "file")
        print("opened as:", browser.select(first.url), "-", first.name)
        """
    ),
    md(
        """
        ## A spectrum in the viewer

        The survey's catalogue says what each spectrum is. We pick one with emission lines and
        open it in the **spectrum viewer**: the grey band is the 1σ uncertainty, red marks
        masked pixels, and the dashed lines are where the common spectral lines fall at the
        catalogue redshift. Try the controls: smoothing, rest frame, units, crop.
        """
    ),
    code(
        """
        survey = f"{store.shared_url}/survey"
        spectra = pd.read_parquet(io.BytesIO(store.read_bytes(f"{survey}/spectra_catalog.parquet")))
        print(spectra["object_class"].value_counts().to_string())
        spectra.head()
        """
    ),
    code(
        """
        pick = spectra[spectra["object_class"] == "emission"].iloc[0]
        viewer = SpectrumViewer(f"{survey}/{pick['file']}", store=store)
        viewer
        """
    ),
    md(
        """
        The viewer's state is ordinary Python: set it from code, or read back what is drawn.
        Here: smooth with a 3-pixel Gaussian and switch to the rest frame, where the lines sit
        at their laboratory wavelengths.
        """
    ),
    code(
        """
        viewer.smoothing = "gaussian"
        viewer.smooth_width = 3
        viewer.frame = "rest"
        print(f"z = {viewer.z:.4f} (catalogue: {pick['z']:.4f})")
        print("lines drawn:", ", ".join(name for name, _ in viewer.marker_positions[:8]))
        """
    ),
    md(
        """
        ### Real survey spectra

        The same reader opens real survey files: SDSS, BOSS, DESI and LAMOST (low and medium
        resolution) are recognised from their headers. If your installation put real examples
        into `shared/examples/`, the next cell plots them.
        """
    ),
    code(
        """
        examples = f"{store.shared_url}/examples"
        real = []
        if store.exists(examples):
            real = [e.url for e in store.list_page(examples).entries if ".fit" in e.name]
        for url in real[:6]:
            real_viewer = SpectrumViewer(url, store=store)
            meta = real_viewer.spectra[0].meta
            print(f"{meta['format']}: {meta['id']}, class {meta['object_class']}")
            print(f"catalogue redshift z = {meta['redshift']}")
            display(real_viewer)
        if not real:
            print("no real examples in this store")
        """
    ),
    md(
        """
        ## Galaxy cutouts

        Each galaxy of the photometric survey is a 5-band (u, g, r, i, z) 32×32 cutout. The
        **cutout viewer** shows a colour composite (Lupton et al. 2004: g, r, i as blue,
        green, red) next to each band, with the catalogue's magnitudes and redshift.
        """
    ),
    code(
        """
        galaxies = pd.read_parquet(io.BytesIO(store.read_bytes(f"{survey}/catalog.parquet")))
        z = galaxies["z"]
        print(f"{len(galaxies)} galaxies, z from {z.min():.2f} to {z.max():.2f}")
        nearby = galaxies.sort_values("z").iloc[len(galaxies) // 10]
        CutoutViewer(f"{survey}/{nearby['file']}", store=store)
        """
    ),
    md(
        """
        A distant one for comparison: smaller, fainter and redder — the clues a
        photometric-redshift model uses.
        """
    ),
    code(
        """
        distant = galaxies.sort_values("z").iloc[-len(galaxies) // 10]
        far_viewer = CutoutViewer(f"{survey}/{distant['file']}", store=store)
        print(far_viewer.catalogue)
        far_viewer
        """
    ),
    md(
        """
        **Next:** `03-redshift-inference` — predict the redshift of every galaxy on your
        cluster.
        """
    ),
]

# ---------------------------------------------------------------------------------------------
INFERENCE = [
    md(
        """
        # 3 · Photometric redshifts for the whole survey, on your cluster

        A spectrum measures a galaxy's redshift precisely, but most galaxies only have images.
        A **photometric-redshift** model estimates z from the 5-band cutout and magnitudes.
        The platform provides a trained model (an AstroMAE-class network: a vision transformer
        with convolutional branches) and runs it with `astrokit.infer`:

        * one Dask task per ~25 MB partition of the survey, spread over your workers;
        * each worker loads the model **once** and keeps it for the next tasks;
        * each partition's predictions are written to your area as soon as they are done
          (an interrupted run resumes where it stopped);
        * the summary checks that **every input row got exactly one prediction**.
        """
    ),
    code(
        """
        import os

        # Parameters: the test suite sets ASTROKIT_NOTEBOOK_QUICK=1 for a short run.
        QUICK = os.environ.get("ASTROKIT_NOTEBOOK_QUICK") == "1"
        PARTITION_MB = 2.0 if QUICK else 25.0  # smaller partitions = more, shorter tasks
        """,
        tags=("parameters",),
    ),
    code(
        """
        import astrokit
        from astrokit.shards import Manifest

        client = astrokit.connect()
        shared_url = os.environ["ASTROKIT_SHARED_URL"]
        # the platform's model (the hub sets ASTROKIT_MODEL_URL); any checkpoint URL works
        model_url = os.environ.get("ASTROKIT_MODEL_URL") or f"{shared_url}/models/photoz-small.pt"
        shards_url = f"{shared_url}/survey/shards"
        out_url = os.environ["ASTROKIT_USER_URL"] + "/inference/survey"
        manifest = Manifest.load(shards_url)
        print(f"input:  {manifest.total_rows} galaxies in {len(manifest.shards)} shards")
        print(f"model:  {model_url}")
        print(f"output: {out_url}")
        print(f"on {len(client.scheduler_info(n_workers=-1)['workers'])} workers")
        """
    ),
    md(
        """
        ## Run it

        The progress bar counts partitions; the dashboard shows one task per partition, named
        `astrokit-infer-…`. Run the cell twice and the second run finds every partition done
        and only rebuilds the summary.
        """
    ),
    code(
        """
        result = astrokit.infer(shards_url, model=model_url, out=out_url, partition_mb=PARTITION_MB)
        s = result.summary  # the run's summary, also written to summary.json
        counts = f"{s['n_predictions']} predictions for {s['n_rows']} rows"
        print(f"complete: {s['complete']}  ({counts})")
        print(f"missing {s['missing']}, duplicated {s['duplicates']}, bad inputs {s['n_bad']}")
        print(f"{s['partitions']} partitions on {s['workers']} workers / {s['threads']} threads")
        if s["samples_per_second"]:
            rate, seconds = s["samples_per_second"], s["compute_seconds"]
            print(f"throughput: {rate:.0f} galaxies/s over {seconds:.1f} s")
        """
    ),
    md(
        """
        ## The catalogue

        `result.to_pandas()` is the merged catalogue: one row per input galaxy with the
        prediction `z_pred`, the known redshift `z_true` (the synthetic survey knows it), and
        a `status` that says why a row has no prediction (e.g. too many bad pixels) — such
        rows are reported, never dropped.
        """
    ),
    code(
        """
        catalog = result.to_pandas()
        print(catalog["status"].value_counts().to_string())
        catalog[["id", "z_pred", "z_true", "status", "source"]].head()
        """
    ),
    md(
        """
        ## How good is it? z_pred against z_true and the Δz metrics

        The standard photo-z metrics (Pasquet et al. 2019) use Δz = (z_pred − z)/(1 + z):

        * **σ_MAD** = 1.4826 · median |Δz − median Δz| — the scatter, robust to outliers;
        * **bias** = mean Δz;
        * **outlier fraction** = share of galaxies with |Δz| > 0.05.
        """
    ),
    code(
        """
        from astrokit.metrics import photoz_metrics

        ok = catalog[(catalog["status"] == "ok") & catalog["z_true"].notna()]
        metrics = photoz_metrics(ok["z_pred"].to_numpy(), ok["z_true"].to_numpy())
        for name in ("n", "sigma_mad", "bias", "outlier_fraction", "mae", "mse"):
            print(f"{name:>16}: {metrics[name]:.4g}")
        """
    ),
    code(
        """
        import matplotlib.pyplot as plt
        import numpy as np

        z_true, z_pred = ok["z_true"].to_numpy(), ok["z_pred"].to_numpy()
        delta = (z_pred - z_true) / (1 + z_true)
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
        ax.scatter(z_true, z_pred, s=3, alpha=0.4)
        line = np.array([0, max(z_true.max(), z_pred.max())])
        ax.plot(line, line, "k-", lw=1, label="z_pred = z_true")
        for sign in (-1, 1):  # the outlier boundary |Δz| = 0.05
            ax.plot(line, line + sign * 0.05 * (1 + line), "r--", lw=0.8)
        ax.set_xlabel("z_true")
        ax.set_ylabel("z_pred")
        sigma, outliers = metrics["sigma_mad"], metrics["outlier_fraction"]
        ax.set_title(f"σ_MAD = {sigma:.4f}, outliers = {outliers:.1%}")
        ax.legend(loc="upper left")
        bx.hist(delta, bins=60)
        bx.axvline(0, color="k", lw=1)
        bx.set_xlabel("Δz = (z_pred − z_true) / (1 + z_true)")
        bx.set_ylabel("galaxies")
        plt.show()
        """
    ),
    md(
        """
        A word of caution: the platform's demo model was trained on this same synthetic survey
        (90 % of it), so these numbers are mostly *in-sample* and flattering. To judge a model,
        run it on galaxies it has not seen — `astrokit.infer` takes any shard set or directory
        of FITS cutouts, and any checkpoint URL.

        The summary the run wrote next to the catalogue carries the same metrics, so a later
        session (or a colleague) can read them without re-running anything:
        """
    ),
    code(
        """
        import json

        from astrokit.store import open_store

        saved = json.loads(open_store().read_bytes(result.summary_url))
        print(result.summary_url)
        print({key: saved[key] for key in ("complete", "n_rows", "n_ok", "n_bad", "partitions")})
        print("sigma_mad from the file:", saved["metrics"]["sigma_mad"])
        """
    ),
    md(
        """
        **Next:** `04-active-learning` — let a model choose which spectra are worth
        labelling.
        """
    ),
]

# ---------------------------------------------------------------------------------------------
ACTIVE = [
    md(
        """
        # 4 · Active learning: let the model choose what to label

        Labelling spectra by eye is slow, and most spectra in a survey look alike. **Active
        learning** trains a classifier on a few labels, lets it score every unlabelled
        spectrum, and asks for labels where it is least sure — so each label teaches it more
        than a random one would (Škoda et al. 2020 used exactly this loop with a 1-D CNN on
        LAMOST spectra; Walmsley et al. 2020 report 35–60 % fewer labels than random).

        Each iteration of the loop:

        1. **scores the pool on your Dask cluster** (one task per pool partition; the
           current weights are sent to each worker once),
        2. **queries** a batch by a strategy (`entropy`, `margin`, `least_confidence`,
           `bald`, or `random` as the baseline),
        3. asks the **oracle** — known labels for a simulation, or *you*, in a widget,
        4. **retrains** the CNN (warm start), evaluates it on a fixed held-out set, and
        5. **checkpoints** everything to your area of the store: a loop resumes after a
           kernel restart without losing a single label.
        """
    ),
    code(
        """
        import os

        # Parameters: the test suite sets ASTROKIT_NOTEBOOK_QUICK=1 for a short run.
        QUICK = os.environ.get("ASTROKIT_NOTEBOOK_QUICK") == "1"
        BATCH = 20 if QUICK else 100  # spectra labelled per iteration
        ITERATIONS = 2 if QUICK else 6  # including the random seed iteration
        SEEDS = [0] if QUICK else [0, 1]  # repeat the experiment to see the spread
        HELDOUT = 60 if QUICK else 500  # labelled spectra kept aside to measure accuracy
        """,
        tags=("parameters",),
    ),
    code(
        """
        %matplotlib inline
        import io

        import pandas as pd

        import astrokit
        from astrokit.store import open_store

        client = astrokit.connect()
        store = open_store()
        survey = f"{store.shared_url}/survey"
        work = f"{store.user_url}/active-learning"
        catalog = pd.read_parquet(io.BytesIO(store.read_bytes(f"{survey}/spectra_catalog.parquet")))
        print(f"{len(catalog)} spectra; classes:")
        print(catalog["object_class"].value_counts().to_string())
        """
    ),
    md(
        """
        ## The pool

        The loop works on a **pool**: every spectrum resampled onto one log-wavelength grid
        and normalised, stored as partitions in your area. Building it reads each spectrum
        file once with the same reader as the viewer (any survey format). The known classes
        from the catalogue go with it: in this notebook they play the oracle, so we can see
        how many labels each strategy needs. Bad files would be skipped and listed, never
        silently dropped.
        """
    ),
    code(
        """
        from astrokit.active import Pool, PoolError, build_pool_from_spectra

        pool_url = f"{work}/pool"
        try:
            pool = Pool.load(pool_url)  # built by an earlier run of this notebook
        except PoolError:
            sources = [f"{survey}/{name}" for name in catalog["file"]]
            labels = dict(zip(sources, catalog["object_class"]))
            pool, skipped = build_pool_from_spectra(
                sources, pool_url, labels=labels, classes=sorted(set(labels.values()))
            )
            print(f"skipped {len(skipped)} files", skipped[:3])
        print(f"pool: {pool.total_rows} spectra in {len(pool.shards)} partitions")
        print(f"classes: {pool.classes}")
        """
    ),
    md(
        """
        ## A simulated run: entropy sampling against random sampling

        `simulate` runs one loop per strategy and seed with the catalogue's labels as the
        oracle. Within a seed, every strategy starts from the same random seed set, the same
        held-out set and the same initial model, so only the strategy differs. Each loop
        checkpoints in your area: run the cell again and it finds the iterations done and
        returns at once. With the full parameters this takes a few minutes: the CNN retrains
        in this notebook after every batch, while the pool is scored on the cluster.
        """
    ),
    code(
        """
        from astrokit.active.experiment import label_efficiency, learning_curves, simulate

        experiment = simulate(
            pool,
            f"{work}/experiment",
            strategies=["entropy"],
            baseline="random",
            seeds=SEEDS,
            iterations=ITERATIONS,
            batch_size=BATCH,
            heldout=HELDOUT,
        )
        curves = learning_curves(experiment)
        pd.DataFrame(
            {
                "labelled": curves["entropy"]["n_labelled"],
                "entropy": curves["entropy"]["mean"],
                "random": curves["random"]["mean"],
            }
        )
        """
    ),
    md(
        """
        Each iteration's log also records the class mix of the batch it asked for. Random
        sampling mirrors the survey's mix; after the shared random seed batch, entropy
        sampling concentrates on whatever the current model confuses (on this survey, mostly
        low signal-to-noise featureless and absorption spectra) — where a label helps most.
        """
    ),
    code(
        """
        for strategy, runs in experiment.histories.items():
            print(strategy)
            for record in runs[0]:
                print(f"  iteration {record.iteration}: {record.batch_classes}")
        """
    ),
    md(
        """
        ## Learning curves and label efficiency

        Held-out accuracy against the number of labels (mean ± std over the seeds), and the
        headline number: how many labels entropy sampling needs to reach the accuracy random
        sampling has at its last iteration, as a ratio (below 1: fewer labels than random).
        """
    ),
    code(
        """
        from astrokit.active.experiment import plot_learning_curves

        display(plot_learning_curves(experiment))
        efficiency = label_efficiency(experiment)
        entropy = efficiency["strategies"]["entropy"]
        print(f"random's final accuracy: {efficiency['target']:.3f} "
              f"with {efficiency['baseline_labels']:.0f} labels")
        if entropy["labels"] is None:
            print("entropy has not reached it yet: run more iterations")
        else:
            print(f"entropy reaches it with {entropy['labels']:.0f} labels "
                  f"(ratio {entropy['ratio']:.2f})")
        """
    ),
    md(
        """
        `astrokit al simulate POOL_URL --strategy entropy --seeds 3 --json` runs the same
        experiment from a terminal.

        ## Now you are the oracle

        A loop with `oracle="human"` stops when it needs labels. The **labelling widget**
        shows each queried spectrum in the spectrum viewer with one button per class, *skip*
        and *undo*. Every click is written to the store at once; when the batch is done you
        can still undo the last answer, and **Next batch** retrains the model and fetches the
        next one. Label a few spectra below — a
        kernel restart loses nothing: running the cell again picks up where you stopped.
        """
    ),
    code(
        """
        from astrokit.active import ActiveLearningLoop
        from astrokit_widgets import LabellingWidget

        human = ActiveLearningLoop(
            pool, f"{work}/human", strategy="entropy", batch_size=5,
            heldout=HELDOUT, oracle="human", seed=1,
        )
        labeller = LabellingWidget(human)
        labeller
        """
    ),
    code(
        """
        print(human)
        print("waiting for your labels:", human.awaiting_labels)
        print("this batch:", [query.id for query in human.batch])
        where = f"{labeller.position + 1} of {labeller.batch_size}"
        print(f"on screen: {labeller.current_id} ({where})")
        """
    ),
    md(
        """
        The labels and the loop's state live in `users/<you>/active-learning/human/` in the
        store: `ActiveLearningLoop.resume(url, oracle="human")` reopens it in any later
        session.
        """
    ),
]

# ---------------------------------------------------------------------------------------------
CATALOGUE = [
    md(
        """
        # 5 · Photometric redshifts from a catalogue, with uncertainties

        Most photo-z work starts from a **catalogue**: a table with magnitudes in a few bands
        (ugriz, griz, …), their errors, and — for some objects — a spectroscopic redshift.
        AstroKit trains a *photometry-only* model on such a table and runs it over every row
        on your cluster, with the same guarantees as image inference (every row exactly once,
        resumable, bad rows reported).

        The model is a small **mixture density network**: magnitudes, colours and magnitude
        errors in, a probability distribution p(z) out. Each object therefore gets a point
        estimate (the median of p(z)) **and** an uncertainty (the central 68 % interval), and
        we can check whether those uncertainties are honest.
        """
    ),
    code(
        """
        import os

        # Parameters: the test suite sets ASTROKIT_NOTEBOOK_QUICK=1 for a short run.
        QUICK = os.environ.get("ASTROKIT_NOTEBOOK_QUICK") == "1"
        EPOCHS = 5 if QUICK else 200  # early stopping ends a full run well before 200
        PARTITION_ROWS = 10_000  # rows per Dask task
        """,
        tags=("parameters",),
    ),
    md(
        """
        ## The catalogue

        The platform seeds `shared/survey/photometry.parquet`: the synthetic survey's galaxies
        observed like an imaging survey does — each band has a depth, faint objects have large
        magnitude errors, and objects too faint to be detected in a band carry the usual
        sentinel magnitude 99. Your own catalogue works the same way (parquet, CSV or a FITS
        binary table); you only name its columns.
        """
    ),
    code(
        """
        import io

        import pandas as pd

        import astrokit
        from astrokit.catalogue import catalogue_columns
        from astrokit.store import open_store

        client = astrokit.connect()
        store = open_store()
        shared_url = os.environ["ASTROKIT_SHARED_URL"]
        work = os.environ["ASTROKIT_USER_URL"] + "/catalogue-photoz"
        catalogue_url = f"{shared_url}/survey/photometry.parquet"
        print("columns:", ", ".join(catalogue_columns(catalogue_url)))
        table = pd.read_parquet(io.BytesIO(store.read_bytes(catalogue_url)))
        print(f"{len(table)} rows")
        table.head()
        """
    ),
    md(
        """
        ## Train on one part, judge on another

        To judge the model honestly we hold out the last fifth of the catalogue: the model is
        trained on the first 80 % (of which it keeps 15 % aside for early stopping) and then
        predicts the held-out rows it has never seen. Both parts go to your own area.
        """
    ),
    code(
        """
        cut = int(0.8 * len(table))
        train_url, test_url = f"{work}/train.parquet", f"{work}/test.parquet"
        for url, part in ((train_url, table.iloc[:cut]), (test_url, table.iloc[cut:])):
            buf = io.BytesIO()
            part.to_parquet(buf, row_group_size=PARTITION_ROWS)
            store.write_bytes(url, buf.getvalue())
        print(f"train: {cut} rows -> {train_url}")
        print(f"test:  {len(table) - cut} rows -> {test_url}")
        """
    ),
    md(
        """
        `astrokit.train_catalogue` (or `astrokit train CATALOGUE --bands … --errors …
        --z-column …` in a terminal) names the columns: `bands` in wavelength order, their
        `errors`, and the redshift column. After every epoch it logs the validation loss and
        the photo-z metrics; it stops when the validation loss has not improved for a while
        and keeps the best epoch. Rows with a missing magnitude or error are skipped and
        counted, never guessed. It runs as one task on your cluster.
        """
    ),
    code(
        """
        bands = ["mag_u", "mag_g", "mag_r", "mag_i", "mag_z"]
        errors = ["magerr_u", "magerr_g", "magerr_r", "magerr_i", "magerr_z"]
        model_url = f"{work}/photoz-catalogue.pt"
        trained = astrokit.train_catalogue(
            train_url,
            out=model_url,
            bands=bands,
            errors=errors,
            z_column="z_spec",
            epochs=EPOCHS,
            client=client,
        )
        m = trained.metrics
        best, runs = m["best_epoch"], m["epochs_run"]
        print(f"trained in {trained.seconds:.0f} s: best epoch {best} of {runs}")
        print(f"rows: {m['n_train']} train, {m['n_val']} validation, skipped {m['skipped']}")
        val, base = m["val"], m["baseline_mean"]
        print(f"validation sigma_MAD {val['sigma_mad']:.4f}", end=" ")
        print(f"(predicting the mean: {base['sigma_mad']:.4f})")
        print(f"validation coverage of the 68% interval: {val['coverage_68']:.3f}")
        """
    ),
    md(
        """
        ## Predict every row, on the cluster

        `astrokit.infer_catalogue` (or `astrokit infer CATALOGUE --model …`) cuts the
        catalogue into row ranges (parquet row groups), runs one task per range on your
        workers, writes each range's predictions atomically, and checks at the end that every
        input row has exactly one output row. It reads the columns the model was trained on
        unless you name others. Run the cell twice: the second run finds every range done.
        """
    ),
    code(
        """
        result = astrokit.infer_catalogue(
            test_url, model=model_url, out=f"{work}/predictions", partition_rows=PARTITION_ROWS
        )
        s = result.summary
        counts = f"{s['n_predictions']} predictions for {s['n_rows']} rows"
        print(f"complete: {s['complete']}  ({counts})")
        print(f"missing {s['missing']}, duplicated {s['duplicates']}, bad rows {s['n_bad']}")
        print("bad rows by status:", s["bad_by_status"])
        print(f"{s['partitions']} tasks on {s['workers']} workers")
        if s["rows_per_second"]:
            print(f"throughput: {s['rows_per_second']:.0f} rows/s")
        """
    ),
    md(
        """
        ## The predictions

        One row per input row: `z_pred` (the median of p(z)), the 68 % interval `z_lo`–`z_hi`,
        `z_true` when the catalogue knows it, and a `status`. A row with a missing magnitude
        (`bad_magnitude`) or error (`bad_error`) gets no prediction, and its `error` column
        says which column was wrong. The full p(z) is there too (`pz_weight`, `pz_mean`,
        `pz_sigma`: a Gaussian mixture per row).
        """
    ),
    code(
        """
        predictions = result.to_pandas()
        print(predictions["status"].value_counts().to_string())
        bad = predictions[predictions["status"] != "ok"]
        if len(bad):
            print("for example:", bad.iloc[0]["id"], "->", bad.iloc[0]["error"])
        predictions[["id", "z_pred", "z_lo", "z_hi", "z_true", "status"]].head()
        """
    ),
    md(
        """
        ## How good are the redshifts, and how honest are the uncertainties?

        The point estimates are judged with Δz = (z_pred − z)/(1 + z): **σ_MAD** (robust
        scatter), **bias** and the **outlier fraction** (|Δz| > 0.05). The uncertainties are
        judged as LSST's RAIL does:

        * **coverage**: the share of true redshifts inside the 68 % interval — 0.68 if the
          intervals are honest, less if they are too narrow;
        * **PIT**: for each object, the fraction of its p(z) below the true z. For honest p(z)
          the PIT values are uniform: a flat histogram. A U shape means over-confident p(z),
          a hump under-confident ones, a slope a bias;
        * **CRPS**: how far the whole p(z) is from the truth, in redshift units (lower is
          better; for a point estimate it is |z_pred − z|).
        """
    ),
    code(
        """
        metrics = s["metrics"]
        for name in ("n", "sigma_mad", "bias", "outlier_fraction", "coverage_68", "crps_mean"):
            print(f"{name:>17}: {metrics[name]:.4g}")
        """
    ),
    code(
        """
        import matplotlib.pyplot as plt
        import numpy as np

        ok = predictions[(predictions["status"] == "ok") & predictions["z_true"].notna()]
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5))
        ax.scatter(ok["z_true"], ok["z_pred"], s=2, alpha=0.3)
        shown = ok.sample(min(200, len(ok)), random_state=0)
        yerr = [shown["z_pred"] - shown["z_lo"], shown["z_hi"] - shown["z_pred"]]
        ax.errorbar(shown["z_true"], shown["z_pred"], yerr=yerr, fmt="none", lw=0.6, color="C1")
        line = np.array([0, ok["z_true"].max()])
        ax.plot(line, line, "k-", lw=1)
        for sign in (-1, 1):  # the outlier boundary |Δz| = 0.05
            ax.plot(line, line + sign * 0.05 * (1 + line), "r--", lw=0.8)
        ax.set_xlabel("z_true")
        ax.set_ylabel("z_pred (median; 68 % interval for 200 objects)")
        sigma, outliers = metrics["sigma_mad"], metrics["outlier_fraction"]
        ax.set_title(f"σ_MAD = {sigma:.4f}, outliers = {outliers:.1%}")
        pit = metrics["pit"]
        edges = np.array(pit["edges"])
        bx.bar(edges[:-1], pit["density"], width=np.diff(edges), align="edge", edgecolor="k")
        bx.axhline(1.0, color="r", lw=1, label="calibrated")
        bx.set_xlabel("PIT = CDF(z_true)")
        bx.set_ylabel("density")
        bx.set_title(f"PIT; coverage of the 68 % interval = {metrics['coverage_68']:.3f}")
        bx.legend()
        plt.show()
        """
    ),
    md(
        """
        The same numbers are in the run's `summary.json`, and the checkpoint remembers the
        columns it was trained on, so a colleague can run it on their catalogue with
        `astrokit infer their.parquet --model … --bands u,g,r,i,z --errors …`.
        `benchmarks/catalogue.py` compares this model with a scikit-learn random forest on
        the same split.
        """
    ),
]

NOTEBOOKS = {
    "01-quickstart.ipynb": QUICKSTART,
    "02-browse-and-plot.ipynb": BROWSE,
    "03-redshift-inference.ipynb": INFERENCE,
    "04-active-learning.ipynb": ACTIVE,
    "05-catalogue-photoz.ipynb": CATALOGUE,
}


def build(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    """A fresh notebook with ``cells`` (deep-copied) and the standard Python 3 kernel."""
    nb = new_notebook(cells=[nbformat.from_dict(dict(cell)) for cell in cells])
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids keep regenerated files byte-identical
    return nb


def render(cells: list[nbformat.NotebookNode]) -> str:
    """The notebook file's text, as written to disk."""
    return nbformat.writes(build(cells)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = args.out / name
        text = render(cells)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        tmp = path.with_name(f".tmp-{name}")
        tmp.write_text(text)
        tmp.replace(path)  # atomic: a reader never sees half a notebook
    if stale:
        sys.stderr.write(f"out of date (run notebooks/generate.py): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
