"""A synthetic photometric catalogue: the survey's galaxies as a table with realistic errors.

:func:`synth_photometry` draws galaxies from the synthetic survey's population
(:mod:`astrokit.survey`: redshift prior, red/blue SED mix, luminosity function, the
16 < r < 22 selection, K-corrections) but makes no images, so 10^5 rows take about a second. It then
*observes* them like an imaging survey does, which the survey's own magnitude columns do not
model:

* each band has a 5-sigma limiting magnitude (:data:`DEPTHS_5SIGMA`, between single-epoch SDSS
  and its Stripe 82 coadd); the flux error is ``10**(-0.4 (m5 - 22.5)) / 5`` nanomaggies,
  the same for every object (sky-dominated), plus a 1 % calibration floor;
* measured fluxes are the true ones plus Gaussian noise of that size; reported magnitude
  errors are ``1.0857 sigma_f / f_measured``, so faint objects have large errors and the
  reported error itself scatters with the measurement, as in a real catalogue;
* a measured flux at or below zero is a non-detection, written as magnitude 99 and error 99
  (the SDSS / DES convention): the bad-row policy of :mod:`astrokit.catalogue` reports it.

``bad_fraction`` additionally injects the faults a user's file may have (NaN magnitudes, -99
sentinels, missing errors, unknown redshifts), for tests. :func:`write_catalogue` writes the
table as parquet, CSV or a FITS binary table through the store.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np

from astrokit.survey import BANDS, _draw_population

log = logging.getLogger(__name__)

__all__ = [
    "DEPTHS_5SIGMA",
    "ERROR_COLUMNS",
    "MAG_COLUMNS",
    "Z_COLUMN",
    "synth_photometry",
    "write_catalogue",
]

#: 5-sigma point-source limiting magnitudes, ugriz (about 0.6 mag deeper than single-epoch SDSS).
DEPTHS_5SIGMA = np.array([22.6, 23.0, 22.8, 22.3, 21.2])
#: Calibration floor added in quadrature to every flux error (fraction of the flux).
CALIBRATION_FLOOR = 0.01
MAG_COLUMNS = tuple(f"mag_{b}" for b in BANDS)
ERROR_COLUMNS = tuple(f"magerr_{b}" for b in BANDS)
Z_COLUMN = "z_spec"
NON_DETECTION = 99.0


def synth_photometry(
    n: int,
    seed: int,
    *,
    depths: np.ndarray | None = None,
    bad_fraction: float = 0.0,
    unknown_z_fraction: float = 0.0,
) -> dict[str, np.ndarray]:
    """Columns of a synthetic photometric catalogue of ``n`` galaxies.

    Parameters
    ----------
    n : int
        Rows.
    seed : int
        The same (n, seed, options) always gives the same table.
    depths : array_like, optional
        5-sigma limiting magnitudes per band (default :data:`DEPTHS_5SIGMA`).
    bad_fraction : float
        Fraction of rows given an injected fault (a NaN magnitude, a -99 magnitude, or a NaN
        error), spread evenly over the three kinds.
    unknown_z_fraction : float
        Fraction of rows whose ``z_spec`` is NaN (no spectrum).

    Returns
    -------
    dict
        ``id`` (str), ``ra``, ``dec``, ``mag_u..mag_z``, ``magerr_u..magerr_z`` (float32),
        ``z_spec`` (float32), ``type`` (0 red .. 1 blue), ``mag_r_true``.
    """
    if n < 0:
        raise ValueError(f"synth_photometry: n must be >= 0, got {n}")
    for name, frac in (("bad_fraction", bad_fraction), ("unknown_z_fraction", unknown_z_fraction)):
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"synth_photometry: {name} must be in [0, 1], got {frac}")
    rng = np.random.default_rng(seed)
    pop = _draw_population(n, rng)
    m5 = DEPTHS_5SIGMA if depths is None else np.asarray(depths, dtype=np.float64)
    if m5.shape != (len(BANDS),):
        raise ValueError(f"depths must have {len(BANDS)} values (ugriz), got {m5.shape}")
    flux = 10 ** (-0.4 * (pop["mags"] - 22.5))  # nanomaggies
    sky_err = 10 ** (-0.4 * (m5 - 22.5)) / 5.0
    sigma_f = np.sqrt(sky_err[None, :] ** 2 + (CALIBRATION_FLOOR * flux) ** 2)
    measured = flux + rng.normal(size=flux.shape) * sigma_f
    detected = measured > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        mags = np.where(detected, 22.5 - 2.5 * np.log10(measured), NON_DETECTION)
        errs = np.where(detected, 1.0857 * sigma_f / measured, NON_DETECTION)
    z = pop["z"].astype(np.float64)

    if bad_fraction > 0:
        bad = np.flatnonzero(rng.random(n) < bad_fraction)
        kind = np.arange(bad.size) % 3
        band = rng.integers(0, len(BANDS), bad.size)
        mags[bad[kind == 0], band[kind == 0]] = np.nan
        mags[bad[kind == 1], band[kind == 1]] = -99.0
        errs[bad[kind == 2], band[kind == 2]] = np.nan
    if unknown_z_fraction > 0:
        z[rng.random(n) < unknown_z_fraction] = np.nan

    out: dict[str, np.ndarray] = {
        "id": np.array([f"phot{seed}-{i:07d}" for i in range(n)], dtype=object),
        "ra": rng.uniform(150.0, 160.0, n),
        "dec": rng.uniform(0.0, 10.0, n),
    }
    for b, name in enumerate(MAG_COLUMNS):
        out[name] = mags[:, b].astype(np.float32)
    for b, name in enumerate(ERROR_COLUMNS):
        out[name] = errs[:, b].astype(np.float32)
    out[Z_COLUMN] = z.astype(np.float32)
    out["type"] = pop["t"].astype(np.float32)
    out["mag_r_true"] = pop["mags"][:, 2].astype(np.float32)
    log.info(
        "synthetic catalogue: %d rows, %d with a non-detection", n, int((~detected).any(1).sum())
    )
    return out


def write_catalogue(
    url: str,
    columns: dict[str, np.ndarray],
    *,
    store: Any = None,
    row_group_size: int | None = None,
) -> str:
    """Write ``columns`` as the catalogue format named by ``url``'s ending (atomically).

    Parameters
    ----------
    url : str
        Ends in ``.parquet``, ``.csv`` or ``.fits``
        (:data:`astrokit.catalogue.CATALOGUE_SUFFIXES`).
    columns : dict of str to array
        Equal-length columns (str/object ones become strings).
    row_group_size : int, optional
        Parquet row group size (the unit of a catalogue inference task); default pyarrow's.

    Returns
    -------
    str
        The URL written.
    """
    from astrokit.catalogue import catalogue_format
    from astrokit.store import resolve

    st, full = resolve(url, store)
    fmt = catalogue_format(full)
    buf = io.BytesIO()
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(dict(columns)), buf, row_group_size=row_group_size)
    elif fmt == "csv":
        import pandas as pd

        pd.DataFrame(dict(columns)).to_csv(buf, index=False)
    else:
        from astropy.table import Table

        table = Table({k: (v.astype(str) if v.dtype == object else v) for k, v in columns.items()})
        table.write(buf, format="fits")
    st.makedirs(full.rstrip("/").rsplit("/", 1)[0])
    st.write_bytes(full, buf.getvalue())
    return full
