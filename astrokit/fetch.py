"""Fetch real SDSS data (spectra, imaging frames, catalogues) into the store via astroquery.

The real path is astroquery's :data:`astroquery.sdss.SDSS` against SkyServer (catalogue
queries: by SQL or by position) and the SAS (FITS files). Both base URLs are astroquery
configuration items; :func:`fetch_sdss` takes ``skyserver_url`` / ``sas_url`` to point them
elsewhere (a mirror, or the recorded-response server the tests run on loopback), using
astroquery's own ``conf.set_temp`` so nothing else changes.

Layout written under ``out_url``::

    catalog.parquet                 the query result (one row per object)
    spectra/spec-PPPP-MMMMM-FFFF.fits
    images/frame-<band>-<run>-<camcol>-<field>.fits   (decompressed; one per field and band,
                                                       however many rows fall in it)
    fetch_report.json               what was written and what failed (with reasons)

Files are validated before being written (spectra must be readable by
:func:`astrokit.formats.read_spectrum`); a failed download or an invalid file is reported and
skipped, the others are kept. Writes go through :class:`astrokit.store.Store` (atomic).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from astrokit.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_RELEASE = 17
SPEC_FIELDS = ["ra", "dec", "z", "class", "plate", "mjd", "fiberID", "run2d", "specobjid"]
# Where the object's imaging frame is. These live in PhotoObjAll only (SpecObjAll has run2d but
# no run/rerun/camcol/field), so a position query must ask for them as photoobj_fields.
PHOTO_FIELDS = ["run", "rerun", "camcol", "field"]


class FetchError(UserError):
    """The query itself failed (network, service error, bad arguments)."""


@dataclass
class FetchReport:
    """What :func:`fetch_sdss` wrote."""

    out_url: str
    rows: int
    spectra: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    catalog_url: str | None = None
    seconds: float = 0.0


@contextlib.contextmanager
def _endpoints(skyserver_url: str | None, sas_url: str | None):
    from astroquery.sdss import conf

    with contextlib.ExitStack() as stack:
        if skyserver_url:
            stack.enter_context(conf.set_temp("skyserver_baseurl", skyserver_url.rstrip("/")))
        if sas_url:
            stack.enter_context(conf.set_temp("sas_baseurl", sas_url.rstrip("/")))
        yield


def _query(
    sdss: Any,
    *,
    sql: str | None,
    coordinates: Any,
    radius: Any,
    data_release: int,
):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if (sql is None) == (coordinates is None):
        raise FetchError("give exactly one of sql= or coordinates=")
    try:
        if sql is not None:
            return sdss.query_sql(sql, data_release=data_release, cache=False)
        coord = coordinates if isinstance(coordinates, SkyCoord) else SkyCoord(coordinates)
        rad = radius if isinstance(radius, u.Quantity) else float(radius) * u.arcsec
        # Both field lists: with specobj_fields alone astroquery selects only SpecObjAll
        # columns, and the frames of the matched objects could not be located.
        return sdss.query_region(
            coord,
            radius=rad,
            spectro=True,
            photoobj_fields=PHOTO_FIELDS,
            specobj_fields=SPEC_FIELDS,
            data_release=data_release,
            cache=False,
        )
    except FetchError:
        raise
    except Exception as exc:  # network, HTTP and service errors come in many types
        raise FetchError(f"SDSS query failed: {type(exc).__name__}: {exc}") from exc


def _table_to_parquet(table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {}
    for name in table.colnames:
        col = table[name]
        values = col.tolist() if col.dtype.kind in "OSU" else list(col)
        if col.dtype.kind == "S":
            values = [v.decode() if isinstance(v, bytes) else v for v in values]
        cols[name] = values
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    return buf.getvalue()


def fetch_sdss(
    out_url: str,
    *,
    sql: str | None = None,
    coordinates: Any = None,
    radius: Any = 2.0,
    spectra: bool = True,
    images: bool = False,
    bands: str = "ugriz",
    data_release: int = DEFAULT_RELEASE,
    limit: int | None = None,
    store: Any = None,
    skyserver_url: str | None = None,
    sas_url: str | None = None,
) -> FetchReport:
    """Query SDSS and write the catalogue, spectra and/or imaging frames into the store.

    Parameters
    ----------
    out_url : str
        Destination directory (your own prefix; shared/ is read-only).
    sql : str, optional
        A SkyServer SQL query; for spectra it must return ``plate, mjd, fiberID, run2d``;
        for images ``run, rerun, camcol, field``.
    coordinates : SkyCoord or str, optional
        Position for a cone search (``query_region(spectro=True)``, selecting
        :data:`SPEC_FIELDS` and :data:`PHOTO_FIELDS`), e.g. ``"0h8m05.63s
        +14d50m23.3s"``.
    radius : float or Quantity
        Cone radius (arcsec when a float).
    spectra, images : bool
        What to download for the matched rows.
    bands : str
        Imaging bands to fetch.
    data_release : int
        SDSS data release (default 17).
    limit : int, optional
        At most this many rows are used.
    store : Store, optional
        Store to write through (default: resolved from ``out_url``).
    skyserver_url, sas_url : str, optional
        Override astroquery's SkyServer / SAS base URLs (mirrors, recorded responses).

    Returns
    -------
    FetchReport

    Raises
    ------
    FetchError
        The query failed or returned nothing; per-file failures are reported, not raised.
    """
    from astroquery.sdss import SDSS

    from astrokit.formats import FormatError, read_spectrum
    from astrokit.store import resolve

    t0 = time.perf_counter()
    store, out_url = resolve(out_url, store)
    base = out_url.rstrip("/")
    store._check_writable(base + "/x")  # fail before talking to the network
    report = FetchReport(out_url=base, rows=0)
    with _endpoints(skyserver_url, sas_url):
        table = _query(
            SDSS, sql=sql, coordinates=coordinates, radius=radius, data_release=data_release
        )
        if table is None or len(table) == 0:
            raise FetchError("SDSS query returned no rows")
        if limit is not None:
            table = table[:limit]
        report.rows = len(table)
        report.catalog_url = f"{base}/catalog.parquet"
        store.write_bytes(report.catalog_url, _table_to_parquet(table))

        if spectra:
            missing = {"plate", "mjd", "fiberID", "run2d"} - set(table.colnames)
            if missing:
                raise FetchError(
                    f"spectra need columns plate, mjd, fiberID, run2d; missing {sorted(missing)}"
                )
            for row in table:
                name = (
                    f"spec-{int(row['plate']):04d}-{int(row['mjd'])}-{int(row['fiberID']):04d}.fits"
                )
                try:
                    (container,) = SDSS.get_spectra_async(
                        matches=table[[row.index]], data_release=data_release, cache=False
                    )
                    data = container.get_string()
                    read_spectrum(data)  # validate before it lands in the store
                except Exception as exc:
                    report.failed.append(
                        {"file": name, "error": type(exc).__name__, "reason": str(exc)[:300]}
                    )
                    log.warning("fetch: %s failed: %s", name, exc)
                    continue
                store.write_bytes(f"{base}/spectra/{name}", data)
                report.spectra.append(name)

        if images:
            missing = {"run", "rerun", "camcol", "field"} - set(table.colnames)
            if missing:
                raise FetchError(
                    f"images need columns run, rerun, camcol, field; missing {sorted(missing)}"
                )
            # A frame covers a whole field (2048 x 1489 px): several matched objects often
            # share one, so each frame is downloaded once, with the first row that needs it.
            seen: set[str] = set()
            for row in table:
                for band in bands:
                    run, camcol, fld = int(row["run"]), int(row["camcol"]), int(row["field"])
                    name = f"frame-{band}-{run:06d}-{camcol}-{fld:04d}.fits"
                    if name in seen:
                        continue
                    seen.add(name)
                    try:
                        (container,) = SDSS.get_images_async(
                            matches=table[[row.index]], band=band,
                            data_release=data_release, cache=False,
                        )  # fmt: skip
                        data = container.get_string()
                        if data[:9] != b"SIMPLE  =":
                            raise FormatError(name, "downloaded frame is not FITS")
                    except Exception as exc:
                        report.failed.append(
                            {"file": name, "error": type(exc).__name__, "reason": str(exc)[:300]}
                        )
                        log.warning("fetch: %s failed: %s", name, exc)
                        continue
                    store.write_bytes(f"{base}/images/{name}", data)
                    report.images.append(name)

    report.seconds = time.perf_counter() - t0
    store.write_bytes(f"{base}/fetch_report.json", json.dumps(asdict(report), indent=1).encode())
    log.info(
        "fetched %d rows: %d spectra, %d images, %d failed",
        report.rows, len(report.spectra), len(report.images), len(report.failed),
    )  # fmt: skip
    return report
