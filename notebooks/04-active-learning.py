# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4 · Active learning: let the model choose what to label
#
# Labelling spectra by eye is slow, and most spectra in a survey look alike. **Active
# learning** trains a classifier on a few labels, lets it score every unlabelled
# spectrum, and asks for labels where it is least sure — so each label teaches it more
# than a random one would (Škoda et al. 2020 used exactly this loop with a 1-D CNN on
# LAMOST spectra; Walmsley et al. 2020 report 35–60 % fewer labels than random).
#
# Each iteration of the loop:
#
# 1. **scores the pool on your Dask cluster** (one task per pool partition; the
#    current weights are sent to each worker once),
# 2. **queries** a batch by a strategy (`entropy`, `margin`, `least_confidence`,
#    `bald`, or `random` as the baseline),
# 3. asks the **oracle** — known labels for a simulation, or *you*, in a widget,
# 4. **retrains** the CNN (warm start), evaluates it on a fixed held-out set, and
# 5. **checkpoints** everything to your area of the store: a loop resumes after a
#    kernel restart without losing a single label.

# %% tags=["parameters"]
import os

# Parameters: the test suite sets ASTROKIT_NOTEBOOK_QUICK=1 for a short run.
QUICK = os.environ.get("ASTROKIT_NOTEBOOK_QUICK") == "1"
BATCH = 20 if QUICK else 100  # spectra labelled per iteration
ITERATIONS = 2 if QUICK else 6  # including the random seed iteration
SEEDS = [0] if QUICK else [0, 1]  # repeat the experiment to see the spread
HELDOUT = 60 if QUICK else 500  # labelled spectra kept aside to measure accuracy

# %%
# %matplotlib inline
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

# %% [markdown]
# ## The pool
#
# The loop works on a **pool**: every spectrum resampled onto one log-wavelength grid
# and normalised, stored as partitions in your area. Building it reads each spectrum
# file once with the same reader as the viewer (any survey format). The known classes
# from the catalogue go with it: in this notebook they play the oracle, so we can see
# how many labels each strategy needs. Bad files would be skipped and listed, never
# silently dropped.

# %%
from astrokit.active import Pool, PoolError, build_pool_from_spectra

pool_url = f"{work}/pool"
try:
    pool = Pool.load(pool_url)  # built by an earlier run of this notebook
except PoolError:
    sources = [f"{survey}/{name}" for name in catalog["file"]]
    labels = dict(zip(sources, catalog["object_class"], strict=True))
    pool, skipped = build_pool_from_spectra(
        sources, pool_url, labels=labels, classes=sorted(set(labels.values()))
    )
    print(f"skipped {len(skipped)} files", skipped[:3])
print(f"pool: {pool.total_rows} spectra in {len(pool.shards)} partitions")
print(f"classes: {pool.classes}")

# %% [markdown]
# ## A simulated run: entropy sampling against random sampling
#
# `simulate` runs one loop per strategy and seed with the catalogue's labels as the
# oracle. Within a seed, every strategy starts from the same random seed set, the same
# held-out set and the same initial model, so only the strategy differs. Each loop
# checkpoints in your area: run the cell again and it finds the iterations done and
# returns at once. With the full parameters this takes a few minutes: the CNN retrains
# in this notebook after every batch, while the pool is scored on the cluster.

# %%
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

# %% [markdown]
# Each iteration's log also records the class mix of the batch it asked for. Random
# sampling mirrors the survey's mix; after the shared random seed batch, entropy
# sampling concentrates on whatever the current model confuses (on this survey, mostly
# low signal-to-noise featureless and absorption spectra) — where a label helps most.

# %%
for strategy, runs in experiment.histories.items():
    print(strategy)
    for record in runs[0]:
        print(f"  iteration {record.iteration}: {record.batch_classes}")

# %% [markdown]
# ## Learning curves and label efficiency
#
# Held-out accuracy against the number of labels (mean ± std over the seeds), and the
# headline number: how many labels entropy sampling needs to reach the accuracy random
# sampling has at its last iteration, as a ratio (below 1: fewer labels than random).

# %%
from IPython.display import display

from astrokit.active.experiment import plot_learning_curves

display(plot_learning_curves(experiment))
efficiency = label_efficiency(experiment)
entropy = efficiency["strategies"]["entropy"]
print(
    f"random's final accuracy: {efficiency['target']:.3f} "
    f"with {efficiency['baseline_labels']:.0f} labels"
)
if entropy["labels"] is None:
    print("entropy has not reached it yet: run more iterations")
else:
    print(f"entropy reaches it with {entropy['labels']:.0f} labels (ratio {entropy['ratio']:.2f})")

# %% [markdown]
# `astrokit al simulate POOL_URL --strategy entropy --seeds 3 --json` runs the same
# experiment from a terminal.
#
# ## Now you are the oracle
#
# A loop with `oracle="human"` stops when it needs labels. The **labelling widget**
# shows each queried spectrum in the spectrum viewer with one button per class, *skip*
# and *undo*. Every click is written to the store at once; when the batch is done you
# can still undo the last answer, and **Next batch** retrains the model and fetches the
# next one. Label a few spectra below — a
# kernel restart loses nothing: running the cell again picks up where you stopped.

# %%
from astrokit_widgets import LabellingWidget

from astrokit.active import ActiveLearningLoop

human = ActiveLearningLoop(
    pool,
    f"{work}/human",
    strategy="entropy",
    batch_size=5,
    heldout=HELDOUT,
    oracle="human",
    seed=1,
)
labeller = LabellingWidget(human)
labeller

# %%
print(human)
print("waiting for your labels:", human.awaiting_labels)
print("this batch:", [query.id for query in human.batch])
where = f"{labeller.position + 1} of {labeller.batch_size}"
print(f"on screen: {labeller.current_id} ({where})")

# %% [markdown]
# The labels and the loop's state live in `users/<you>/active-learning/human/` in the
# store: `ActiveLearningLoop.resume(url, oracle="human")` reopens it in any later
# session.
