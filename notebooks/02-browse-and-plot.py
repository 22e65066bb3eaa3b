# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2 · Browse the store, plot spectra and cutouts
#
# Everything the platform knows lives in an **object store** (a directory on the embedded
# default, an S3 bucket on a larger installation):
#
# * `shared/` — the survey: spectra, galaxy cutouts, catalogues, models. **Read-only**.
# * `users/<you>/` — your own area: results, checkpoints, anything you write.
#
# The widgets below work on both kinds of store; paths are URLs (`file://…`, `s3://…`).

# %%
# %matplotlib widget
import io

import pandas as pd
from astrokit_widgets import CutoutViewer, SpectrumViewer, StoreBrowser
from IPython.display import display

from astrokit.store import open_store

store = open_store()  # the store the hub configured for this server
print(store)
print("shared area:", store.shared_url)
print("your area:  ", store.user_url)

# %% [markdown]
# ## The store browser
#
# Click through the folders; picking a FITS file shows its header and opens a spectrum
# in the spectrum viewer or a cutout in the cutout viewer. Big folders are listed a page
# at a time (“load more”), so a prefix with 100,000 objects opens as fast as one with 10.
# The filter box takes plain text (`emission`) or a glob (`*.fits`).

# %%
browser = StoreBrowser()
browser

# %% [markdown]
# Everything the browser does on a click it also does from code — handy to script it,
# and how the tests check it. Here we go into the survey's spectra and pick the first
# file; the preview above updates.

# %%
browser.navigate(f"{store.shared_url}/survey/spectra")
more = "(more pages)" if browser.has_more else ""
print(f"{len(browser.entries)} entries on the first page", more)
first = next(entry for entry in browser.entries if entry.kind == "file")
print("opened as:", browser.select(first.url), "-", first.name)

# %% [markdown]
# ## A spectrum in the viewer
#
# The survey's catalogue says what each spectrum is. We pick one with emission lines and
# open it in the **spectrum viewer**: the grey band is the 1σ uncertainty, red marks
# masked pixels, and the dashed lines are where the common spectral lines fall at the
# catalogue redshift. Try the controls: smoothing, rest frame, units, crop.

# %%
survey = f"{store.shared_url}/survey"
spectra = pd.read_parquet(io.BytesIO(store.read_bytes(f"{survey}/spectra_catalog.parquet")))
print(spectra["object_class"].value_counts().to_string())
spectra.head()

# %%
pick = spectra[spectra["object_class"] == "emission"].iloc[0]
viewer = SpectrumViewer(f"{survey}/{pick['file']}", store=store)
viewer

# %% [markdown]
# The viewer's state is ordinary Python: set it from code, or read back what is drawn.
# Here: smooth with a 3-pixel Gaussian and switch to the rest frame, where the lines sit
# at their laboratory wavelengths.

# %%
viewer.smoothing = "gaussian"
viewer.smooth_width = 3
viewer.frame = "rest"
print(f"z = {viewer.z:.4f} (catalogue: {pick['z']:.4f})")
print("lines drawn:", ", ".join(name for name, _ in viewer.marker_positions[:8]))

# %% [markdown]
# ### Real survey spectra
#
# The same reader opens real survey files: SDSS, BOSS, DESI and LAMOST (low and medium
# resolution) are recognised from their headers. If your installation put real examples
# into `shared/examples/`, the next cell plots them.

# %%
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

# %% [markdown]
# ## Galaxy cutouts
#
# Each galaxy of the photometric survey is a 5-band (u, g, r, i, z) 32×32 cutout. The
# **cutout viewer** shows a colour composite (Lupton et al. 2004: g, r, i as blue,
# green, red) next to each band, with the catalogue's magnitudes and redshift.

# %%
galaxies = pd.read_parquet(io.BytesIO(store.read_bytes(f"{survey}/catalog.parquet")))
z = galaxies["z"]
print(f"{len(galaxies)} galaxies, z from {z.min():.2f} to {z.max():.2f}")
nearby = galaxies.sort_values("z").iloc[len(galaxies) // 10]
CutoutViewer(f"{survey}/{nearby['file']}", store=store)

# %% [markdown]
# A distant one for comparison: smaller, fainter and redder — the clues a
# photometric-redshift model uses.

# %%
distant = galaxies.sort_values("z").iloc[-len(galaxies) // 10]
far_viewer = CutoutViewer(f"{survey}/{distant['file']}", store=store)
print(far_viewer.catalogue)
far_viewer

# %% [markdown]
# **Next:** `03-redshift-inference` — predict the redshift of every galaxy on your
# cluster.
