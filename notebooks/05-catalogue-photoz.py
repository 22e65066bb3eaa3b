# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5 · Photometric redshifts from a catalogue, with uncertainties
#
# Most photo-z work starts from a **catalogue**: a table with magnitudes in a few bands
# (ugriz, griz, …), their errors, and — for some objects — a spectroscopic redshift.
# AstroKit trains a *photometry-only* model on such a table and runs it over every row
# on your cluster, with the same guarantees as image inference (every row exactly once,
# resumable, bad rows reported).
#
# The model is a small **mixture density network**: magnitudes, colours and magnitude
# errors in, a probability distribution p(z) out. Each object therefore gets a point
# estimate (the median of p(z)) **and** an uncertainty (the central 68 % interval), and
# we can check whether those uncertainties are honest.

# %% tags=["parameters"]
import os

# Parameters: the test suite sets ASTROKIT_NOTEBOOK_QUICK=1 for a short run.
QUICK = os.environ.get("ASTROKIT_NOTEBOOK_QUICK") == "1"
EPOCHS = 5 if QUICK else 200  # early stopping ends a full run well before 200
PARTITION_ROWS = 10_000  # rows per Dask task

# %% [markdown]
# ## The catalogue
#
# The platform seeds `shared/survey/photometry.parquet`: the synthetic survey's galaxies
# observed like an imaging survey does — each band has a depth, faint objects have large
# magnitude errors, and objects too faint to be detected in a band carry the usual
# sentinel magnitude 99. Your own catalogue works the same way (parquet, CSV or a FITS
# binary table); you only name its columns.

# %%
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

# %% [markdown]
# ## Train on one part, judge on another
#
# To judge the model honestly we hold out the last fifth of the catalogue: the model is
# trained on the first 80 % (of which it keeps 15 % aside for early stopping) and then
# predicts the held-out rows it has never seen. Both parts go to your own area.

# %%
cut = int(0.8 * len(table))
train_url, test_url = f"{work}/train.parquet", f"{work}/test.parquet"
for url, part in ((train_url, table.iloc[:cut]), (test_url, table.iloc[cut:])):
    buf = io.BytesIO()
    part.to_parquet(buf, row_group_size=PARTITION_ROWS)
    store.write_bytes(url, buf.getvalue())
print(f"train: {cut} rows -> {train_url}")
print(f"test:  {len(table) - cut} rows -> {test_url}")

# %% [markdown]
# `astrokit.train_catalogue` (or `astrokit train CATALOGUE --bands … --errors …
# --z-column …` in a terminal) names the columns: `bands` in wavelength order, their
# `errors`, and the redshift column. After every epoch it logs the validation loss and
# the photo-z metrics; it stops when the validation loss has not improved for a while
# and keeps the best epoch. Rows with a missing magnitude or error are skipped and
# counted, never guessed. It runs as one task on your cluster.

# %%
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

# %% [markdown]
# ## Predict every row, on the cluster
#
# `astrokit.infer_catalogue` (or `astrokit infer CATALOGUE --model …`) cuts the
# catalogue into row ranges (parquet row groups), runs one task per range on your
# workers, writes each range's predictions atomically, and checks at the end that every
# input row has exactly one output row. It reads the columns the model was trained on
# unless you name others. Run the cell twice: the second run finds every range done.

# %%
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

# %% [markdown]
# ## The predictions
#
# One row per input row: `z_pred` (the median of p(z)), the 68 % interval `z_lo`–`z_hi`,
# `z_true` when the catalogue knows it, and a `status`. A row with a missing magnitude
# (`bad_magnitude`) or error (`bad_error`) gets no prediction, and its `error` column
# says which column was wrong. The full p(z) is there too (`pz_weight`, `pz_mean`,
# `pz_sigma`: a Gaussian mixture per row).

# %%
predictions = result.to_pandas()
print(predictions["status"].value_counts().to_string())
bad = predictions[predictions["status"] != "ok"]
if len(bad):
    print("for example:", bad.iloc[0]["id"], "->", bad.iloc[0]["error"])
predictions[["id", "z_pred", "z_lo", "z_hi", "z_true", "status"]].head()

# %% [markdown]
# ## How good are the redshifts, and how honest are the uncertainties?
#
# The point estimates are judged with Δz = (z_pred − z)/(1 + z): **σ_MAD** (robust
# scatter), **bias** and the **outlier fraction** (|Δz| > 0.05). The uncertainties are
# judged as LSST's RAIL does:
#
# * **coverage**: the share of true redshifts inside the 68 % interval — 0.68 if the
#   intervals are honest, less if they are too narrow;
# * **PIT**: for each object, the fraction of its p(z) below the true z. For honest p(z)
#   the PIT values are uniform: a flat histogram. A U shape means over-confident p(z),
#   a hump under-confident ones, a slope a bias;
# * **CRPS**: how far the whole p(z) is from the truth, in redshift units (lower is
#   better; for a point estimate it is |z_pred − z|).

# %%
metrics = s["metrics"]
for name in ("n", "sigma_mad", "bias", "outlier_fraction", "coverage_68", "crps_mean"):
    print(f"{name:>17}: {metrics[name]:.4g}")

# %%
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

# %% [markdown]
# The same numbers are in the run's `summary.json`, and the checkpoint remembers the
# columns it was trained on, so a colleague can run it on their catalogue with
# `astrokit infer their.parquet --model … --bands u,g,r,i,z --errors …`.
# `benchmarks/catalogue.py` compares this model with a scikit-learn random forest on
# the same split.
