# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3 · Photometric redshifts for the whole survey, on your cluster
#
# A spectrum measures a galaxy's redshift precisely, but most galaxies only have images.
# A **photometric-redshift** model estimates z from the 5-band cutout and magnitudes.
# The platform provides a trained model (an AstroMAE-class network: a vision transformer
# with convolutional branches) and runs it with `astrokit.infer`:
#
# * one Dask task per ~25 MB partition of the survey, spread over your workers;
# * each worker loads the model **once** and keeps it for the next tasks;
# * each partition's predictions are written to your area as soon as they are done
#   (an interrupted run resumes where it stopped);
# * the summary checks that **every input row got exactly one prediction**.

# %% tags=["parameters"]
import os

# Parameters: the test suite sets ASTROKIT_NOTEBOOK_QUICK=1 for a short run.
QUICK = os.environ.get("ASTROKIT_NOTEBOOK_QUICK") == "1"
PARTITION_MB = 2.0 if QUICK else 25.0  # smaller partitions = more, shorter tasks

# %%
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

# %% [markdown]
# ## Run it
#
# The progress bar counts partitions; the dashboard shows one task per partition, named
# `astrokit-infer-…`. Run the cell twice and the second run finds every partition done
# and only rebuilds the summary.

# %%
result = astrokit.infer(shards_url, model=model_url, out=out_url, partition_mb=PARTITION_MB)
s = result.summary  # the run's summary, also written to summary.json
counts = f"{s['n_predictions']} predictions for {s['n_rows']} rows"
print(f"complete: {s['complete']}  ({counts})")
print(f"missing {s['missing']}, duplicated {s['duplicates']}, bad inputs {s['n_bad']}")
print(f"{s['partitions']} partitions on {s['workers']} workers / {s['threads']} threads")
if s["samples_per_second"]:
    rate, seconds = s["samples_per_second"], s["compute_seconds"]
    print(f"throughput: {rate:.0f} galaxies/s over {seconds:.1f} s")

# %% [markdown]
# ## The catalogue
#
# `result.to_pandas()` is the merged catalogue: one row per input galaxy with the
# prediction `z_pred`, the known redshift `z_true` (the synthetic survey knows it), and
# a `status` that says why a row has no prediction (e.g. too many bad pixels) — such
# rows are reported, never dropped.

# %%
catalog = result.to_pandas()
print(catalog["status"].value_counts().to_string())
catalog[["id", "z_pred", "z_true", "status", "source"]].head()

# %% [markdown]
# ## How good is it? z_pred against z_true and the Δz metrics
#
# The standard photo-z metrics (Pasquet et al. 2019) use Δz = (z_pred − z)/(1 + z):
#
# * **σ_MAD** = 1.4826 · median |Δz − median Δz| — the scatter, robust to outliers;
# * **bias** = mean Δz;
# * **outlier fraction** = share of galaxies with |Δz| > 0.05.

# %%
from astrokit.metrics import photoz_metrics

ok = catalog[(catalog["status"] == "ok") & catalog["z_true"].notna()]
metrics = photoz_metrics(ok["z_pred"].to_numpy(), ok["z_true"].to_numpy())
for name in ("n", "sigma_mad", "bias", "outlier_fraction", "mae", "mse"):
    print(f"{name:>16}: {metrics[name]:.4g}")

# %%
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

# %% [markdown]
# A word of caution: the platform's demo model was trained on this same synthetic survey
# (90 % of it), so these numbers are mostly *in-sample* and flattering. To judge a model,
# run it on galaxies it has not seen — `astrokit.infer` takes any shard set or directory
# of FITS cutouts, and any checkpoint URL.
#
# The summary the run wrote next to the catalogue carries the same metrics, so a later
# session (or a colleague) can read them without re-running anything:

# %%
import json

from astrokit.store import open_store

saved = json.loads(open_store().read_bytes(result.summary_url))
print(result.summary_url)
print({key: saved[key] for key in ("complete", "n_rows", "n_ok", "n_bad", "partitions")})
print("sigma_mad from the file:", saved["metrics"]["sigma_mad"])

# %% [markdown]
# **Next:** `04-active-learning` — let a model choose which spectra are worth
# labelling.
