# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1 · Quickstart: your own Dask cluster
#
# When the hub started this server it also started a **Dask cluster for you alone**: a
# scheduler and the workers of the profile you picked, talking over TLS with credentials
# made for this server. Nobody else's code can join it, and it stops when your server
# stops.
#
# In this notebook you will
#
# 1. connect to the cluster — with no arguments,
# 2. open its dashboard through the hub,
# 3. see how big it is and how it scales,
# 4. run a first computation on the shared survey.

# %% [markdown]
# ## 1. Connect
#
# `astrokit.connect()` reads what the hub put in this server's environment (the
# scheduler's address, the TLS certificate files and the number of workers in your
# profile) and waits until all the workers are there. A plain `distributed.Client()`
# would connect too; `connect()` adds clear error messages and wakes a cluster that
# released its workers while you were away.

# %%
import os

import astrokit

client = astrokit.connect()
client

# %% [markdown]
# ## 2. Watch it: the dashboard
#
# The Dask dashboard shows every task as it runs, the memory of each worker and the
# progress of long computations. Its link goes **through the hub**
# (`/user/<you>/proxy/<port>/status`), so your hub login protects it and it works from
# wherever you reach the hub. Open it in a new browser tab and keep it beside this
# notebook while the next cells run.

# %%
from IPython.display import HTML

from astrokit.connect import dashboard_link

link = dashboard_link() or client.dashboard_link  # the hub's link, else Dask's own
anchor = f'<a class="astrokit-dashboard" href="{link}" target="_blank">'
HTML(f"{anchor}Dask dashboard: {link}</a>")

# %% [markdown]
# ## 3. How big is it, and how does it scale?
#
# The profile you chose on the hub's spawn page fixed the cluster's **maximum** size:
# the number of workers, the threads of each and the memory each may use (a worker that
# goes over its limit is restarted, not your notebook). The table below comes from the
# scheduler itself.

# %%
workers = client.scheduler_info(n_workers=-1)["workers"]
for address, info in sorted(workers.items()):
    print(
        f"worker {info['name']!s:>3}  {address:<28} threads={info['nthreads']}  "
        f"memory limit={info['memory_limit'] / 2**30:.2f} GiB"
    )
print(f"{len(workers)} workers, {sum(client.nthreads().values())} threads in all")
print("profile:", os.environ.get("ASTROKIT_PROFILE", "(not started by the hub)"))

# %% [markdown]
# Scaling is automatic between zero and that maximum: when your cluster sits idle (the
# platform's default is 10 minutes) it **releases its workers** so that their memory goes
# back to everyone, and `astrokit.connect()` **scales it back up** to your profile's size
# the next time you connect. You can also scale it yourself, anywhere between zero and
# your profile's size, with `scale_cluster()`. The cell below does both: it releases all
# but one worker now (as the idle timer would), then lets `connect()` bring the rest back,
# counting the workers at each step. To get a *bigger* cluster, stop your server from the
# hub's control panel and start it again with a larger profile.

# %%
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

# %% [markdown]
# ## 4. A first computation on the survey
#
# The shared, read-only survey area holds galaxy cutouts packed into **shards**: files
# of about 25 MB, each holding thousands of 5-band (ugriz) 32×32 images with their
# magnitudes and redshifts, plus a `manifest.json` that lists them with row counts and
# checksums.

# %%
from astrokit.shards import Manifest

shards_url = os.environ["ASTROKIT_SHARED_URL"] + "/survey/shards"
manifest = Manifest.load(shards_url)
print(f"{manifest.total_rows} galaxies in {len(manifest.shards)} shards at {shards_url}")

# %% [markdown]
# We send **one task per shard** to the cluster. Each task runs on a worker, reads its
# shard straight from the store (the data never passes through this notebook), and
# returns a few numbers: how many galaxies fall in each redshift bin and the sum of
# their g − r colours. Only those small sums come back; we add them up here. Watch the
# dashboard while it runs.

# %%
import numpy as np

Z_BINS = np.linspace(0.0, 0.7, 8)


def colour_by_redshift(url):
    """Runs on a worker: g - r colour sums per redshift bin for one shard."""
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
for lo, hi, n, colour in zip(Z_BINS[:-1], Z_BINS[1:], count, mean_g_r, strict=True):
    print(f"  {lo:.1f} <= z < {hi:.1f}: {n:6d} galaxies, mean g - r = {colour:+.3f}")

# %%
import matplotlib.pyplot as plt

centres = (Z_BINS[:-1] + Z_BINS[1:]) / 2
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(centres[count > 0], mean_g_r[count > 0], "o-")
ax.set_xlabel("redshift z")
ax.set_ylabel("mean g − r colour [mag]")
ax.set_title("Colour against redshift, computed by the workers")
plt.show()

# %% [markdown]
# The colour changes systematically with redshift: the farther a galaxy, the more its
# light is stretched to longer wavelengths, and features such as the 4000 Å break move
# from one band into the next. That colour–redshift relation (with the magnitudes and
# the galaxy's size) is what a photometric-redshift model learns — notebook 3.
#
# **Next:** `02-browse-and-plot` — browse the store and look at spectra and cutouts.
