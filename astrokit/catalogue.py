"""Photometric catalogues in the store: reading, column checks, the bad-row policy, row ranges.

A *catalogue* is one table file -- parquet, CSV or a FITS binary table -- with one row per
object: magnitudes in some bands, optionally their errors, a spectroscopic redshift when it
is known, and an identifier. :class:`CatalogueSpec` names those columns (``bands`` in
wavelength order, e.g. ``u,g,r,i,z``); :func:`check_columns` fails with
:class:`MissingColumnError`, naming the column and the columns the file has, before any work
starts.

The bad-row policy (:func:`screen_photometry`) is applied the same way in training and
inference, and a row it rejects is *reported*, never predicted:

* ``bad_magnitude`` -- a band's magnitude is NaN/inf or a sentinel (``|m| >= 50``, as the
  99 / -99 / -9999 that SDSS, DES and Legacy Surveys write for non-detections);
* ``bad_error`` -- a band's error (when error columns are given) is NaN/inf, negative or a
  sentinel (``>= 50``).

The ``error`` text of such a row names the offending columns. Training skips (and counts)
these rows and rows without a finite redshift.

Partitions for distributed inference are row ranges (:func:`plan_catalogue`): for parquet
they follow row groups, and a task reads only the row groups that cover its range; CSV and
FITS files are read whole by each task and sliced (fine for the ~10^5-10^6 rows such files
hold; convert larger ones to parquet).
"""

from __future__ import annotations

import io
import itertools
import logging
import posixpath
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from astrokit.errors import UserError

log = logging.getLogger(__name__)

__all__ = [
    "CATALOGUE_SUFFIXES",
    "DEFAULT_PARTITION_ROWS",
    "MAG_SENTINEL",
    "CatalogueError",
    "CatalogueSpec",
    "MissingColumnError",
    "catalogue_columns",
    "catalogue_format",
    "catalogue_rows",
    "check_columns",
    "is_catalogue",
    "plan_catalogue",
    "read_catalogue",
    "read_spec_arrays",
    "screen_photometry",
]

#: File name endings recognised as catalogues, by format.
CATALOGUE_SUFFIXES = {
    "parquet": (".parquet", ".pq"),
    "csv": (".csv", ".csv.gz", ".tsv"),
    "fits": (".fits", ".fit", ".fits.gz", ".fts"),
}
#: |magnitude| (or error) at or above this is a sentinel for "not measured" (99, -99, -9999).
MAG_SENTINEL = 50.0
#: Rows per inference task (one parquet row group or more; split further for idle threads).
DEFAULT_PARTITION_ROWS = 200_000


class CatalogueError(UserError, ValueError):
    """A catalogue cannot be used: unknown format, unreadable, wrong column types."""


class MissingColumnError(CatalogueError):
    """A column named by the caller is not in the catalogue.

    Attributes
    ----------
    column : str
        The missing column.
    available : list of str
        The columns the file has.
    """

    def __init__(self, url: str, column: str, role: str, available: list[str]) -> None:
        self.column = column
        self.available = list(available)
        super().__init__(
            f"{url}: no column {column!r} ({role}); the file has: {', '.join(available)}"
        )


def _split_names(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",")]
    else:
        names = [str(v).strip() for v in value]
    if not names or any(not n for n in names):
        raise CatalogueError(f"column list {value!r} has an empty name; expected e.g. 'u,g,r'")
    return tuple(names)


@dataclass(frozen=True)
class CatalogueSpec:
    """Which columns of a catalogue hold what.

    Parameters
    ----------
    bands : str or sequence of str
        Magnitude columns in wavelength order (``"u,g,r,i,z"`` or a list); at least 2.
    errors : str or sequence of str, optional
        Their error columns, same order and number.
    z_column : str, optional
        Spectroscopic redshift (training needs it; inference uses it for metrics).
    id_column : str, optional
        Object identifier; default: ``id`` when the file has it, else the row number.
    """

    bands: tuple[str, ...]
    errors: tuple[str, ...] | None = None
    z_column: str | None = None
    id_column: str | None = None

    def __init__(
        self,
        bands: str | list[str] | tuple[str, ...],
        errors: str | list[str] | tuple[str, ...] | None = None,
        z_column: str | None = None,
        id_column: str | None = None,
    ) -> None:
        b = _split_names(bands)
        if b is None or len(b) < 2:
            raise CatalogueError(f"bands must name at least 2 magnitude columns, got {bands!r}")
        e = _split_names(errors)
        if e is not None and len(e) != len(b):
            raise CatalogueError(
                f"errors names {len(e)} columns ({', '.join(e)}) but bands names {len(b)} "
                f"({', '.join(b)}); give one error column per band, in the same order"
            )
        object.__setattr__(self, "bands", b)
        object.__setattr__(self, "errors", e)
        object.__setattr__(self, "z_column", z_column or None)
        object.__setattr__(self, "id_column", id_column or None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists for the column tuples)."""
        d = asdict(self)
        d["bands"] = list(self.bands)
        d["errors"] = list(self.errors) if self.errors else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CatalogueSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(d["bands"], d.get("errors"), d.get("z_column"), d.get("id_column"))


def catalogue_format(url: str) -> str:
    """``"parquet"``, ``"csv"`` or ``"fits"`` from the file name.

    Raises
    ------
    CatalogueError
        The name ends in none of :data:`CATALOGUE_SUFFIXES`.
    """
    name = url.rstrip("/").lower()
    for fmt, suffixes in CATALOGUE_SUFFIXES.items():
        if name.endswith(suffixes):
            return fmt
    allowed = ", ".join(s for v in CATALOGUE_SUFFIXES.values() for s in v)
    raise CatalogueError(f"{url}: not a catalogue file name; expected one ending in {allowed}")


def is_catalogue(url: str) -> bool:
    """True when ``url`` names a catalogue file (by its ending)."""
    try:
        catalogue_format(url)
    except CatalogueError:
        return False
    return True


def _resolve(url: str, store: Any) -> tuple[Any, str]:
    from astrokit.store import resolve

    return resolve(url, store)


def _fits_table(data: bytes, url: str) -> Any:
    from astropy.io import fits

    hdul = fits.open(io.BytesIO(data), memmap=False)
    for hdu in hdul:
        if isinstance(hdu, fits.BinTableHDU):
            return hdu
    raise CatalogueError(f"{url}: no binary table HDU in this FITS file")


def catalogue_columns(url: str, *, store: Any = None) -> list[str]:
    """The column names of a catalogue (reads only the schema / header where it can)."""
    st, full = _resolve(url, store)
    fmt = catalogue_format(full)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            with st.open(full, "rb") as fh:
                return list(pq.ParquetFile(fh).schema_arrow.names)
        if fmt == "csv":
            import pandas as pd

            with st.open(full, "rb") as fh:
                return [str(c) for c in pd.read_csv(fh, nrows=0, **_csv_options(full)).columns]
        return list(_fits_table(st.read_bytes(full), full).columns.names)
    except CatalogueError:
        raise
    except (OSError, ValueError) as exc:
        from astrokit.store import StoreError

        if isinstance(exc, StoreError):
            raise
        raise CatalogueError(f"{full}: unreadable {fmt} catalogue ({exc})") from exc


def _csv_options(url: str) -> dict[str, Any]:
    opts: dict[str, Any] = {"sep": "\t" if url.lower().endswith(".tsv") else ","}
    if url.lower().endswith(".gz"):
        opts["compression"] = "gzip"
    return opts


def catalogue_rows(url: str, *, store: Any = None) -> tuple[int, list[int]]:
    """Number of rows and, for parquet, the row count of each row group (else ``[rows]``)."""
    st, full = _resolve(url, store)
    fmt = catalogue_format(full)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with st.open(full, "rb") as fh:
            meta = pq.ParquetFile(fh).metadata
            groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        return sum(groups), groups
    if fmt == "fits":
        n = int(_fits_table(st.read_bytes(full), full).header["NAXIS2"])
        return n, [n]
    cols = catalogue_columns(full, store=st)
    n = len(read_catalogue(full, [cols[0]], store=st)[cols[0]])
    return n, [n]


def check_columns(url: str, spec: CatalogueSpec, *, store: Any = None) -> list[str]:
    """Check that every column ``spec`` names is in the file; return the file's columns.

    Raises
    ------
    MissingColumnError
        Naming the first missing column, its role and every column the file has.
    """
    available = catalogue_columns(url, store=store)
    roles = [(b, "magnitude band") for b in spec.bands]
    roles += [(e, "magnitude error") for e in spec.errors or ()]
    if spec.z_column:
        roles.append((spec.z_column, "redshift"))
    if spec.id_column:
        roles.append((spec.id_column, "identifier"))
    for column, role in roles:
        if column not in available:
            raise MissingColumnError(url, column, role, available)
    return available


def read_catalogue(
    url: str,
    columns: list[str],
    *,
    start: int | None = None,
    stop: int | None = None,
    store: Any = None,
) -> dict[str, np.ndarray]:
    """Read ``columns`` of rows ``[start, stop)`` as numpy arrays.

    Parquet reads only the row groups that overlap the range; CSV and FITS read the file and
    slice.

    Raises
    ------
    MissingColumnError
        A column is not in the file.
    CatalogueError
        The file cannot be parsed as its format.
    """
    st, full = _resolve(url, store)
    fmt = catalogue_format(full)
    available = catalogue_columns(full, store=st)
    for column in columns:
        if column not in available:
            raise MissingColumnError(full, column, "requested", available)
    try:
        if fmt == "parquet":
            table = _read_parquet_range(st, full, columns, start, stop)
            return {c: table[c].to_numpy(zero_copy_only=False) for c in columns}
        if fmt == "csv":
            import pandas as pd

            with st.open(full, "rb") as fh:
                frame = pd.read_csv(fh, usecols=columns, **_csv_options(full))
            sl = slice(start, stop)
            return {c: frame[c].to_numpy()[sl] for c in columns}
        hdu = _fits_table(st.read_bytes(full), full)
        sl = slice(start, stop)
        out = {}
        for c in columns:
            arr = np.asarray(hdu.data[c][sl])
            if arr.dtype.byteorder not in ("=", "|"):
                arr = arr.astype(arr.dtype.newbyteorder("="))
            out[c] = arr
        return out
    except CatalogueError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        from astrokit.store import StoreError

        if isinstance(exc, StoreError):
            raise
        raise CatalogueError(f"{full}: unreadable {fmt} catalogue ({exc})") from exc


def _read_parquet_range(
    st: Any, url: str, columns: list[str], start: int | None, stop: int | None
) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with st.open(url, "rb") as fh:
        pf = pq.ParquetFile(fh)
        meta = pf.metadata
        n = meta.num_rows
        a = 0 if start is None else max(0, start)
        b = n if stop is None else min(n, stop)
        groups, offset, first = [], 0, None
        for i in range(meta.num_row_groups):
            rows = meta.row_group(i).num_rows
            if offset + rows > a and offset < b:
                groups.append(i)
                first = offset if first is None else first
            offset += rows
        if not groups or b <= a:
            return pa.table({c: pa.array([], pf.schema_arrow.field(c).type) for c in columns})
        table = pf.read_row_groups(groups, columns=columns)
    return table.slice(a - first, b - a)


def _as_float(values: np.ndarray, url: str, column: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        # pandas/pyarrow give object arrays for strings or mixed cells: convert cell by cell so
        # that one unparseable cell is one bad row, not a failed file
        out = np.full(len(values), np.nan)
        bad = 0
        for i, v in enumerate(values):
            try:
                out[i] = float(v) if v is not None else np.nan
            except (TypeError, ValueError):
                bad += 1
        if bad == len(values) and bad:
            raise CatalogueError(
                f"{url}: column {column!r} is not numeric (first value {values[0]!r})"
            ) from None
        return out


def read_spec_arrays(
    url: str,
    spec: CatalogueSpec,
    *,
    start: int | None = None,
    stop: int | None = None,
    store: Any = None,
) -> dict[str, np.ndarray]:
    """Read the columns ``spec`` names: ``mags`` (n, bands), ``errors`` (n, bands) or None,
    ``z`` (NaN where unknown or without a z column), ``ids`` (str) and ``rows`` (row numbers).
    """
    st, full = _resolve(url, store)
    available = check_columns(full, spec, store=st)
    id_column = spec.id_column or ("id" if "id" in available else None)
    wanted = list(spec.bands) + list(spec.errors or ())
    wanted += [c for c in (spec.z_column, id_column) if c and c not in wanted]
    cols = read_catalogue(full, wanted, start=start, stop=stop, store=st)
    n = len(cols[spec.bands[0]])
    first = 0 if start is None else start
    mags = np.stack([_as_float(cols[b], full, b) for b in spec.bands], axis=1)
    errors = None
    if spec.errors:
        errors = np.stack([_as_float(cols[e], full, e) for e in spec.errors], axis=1)
    z = _as_float(cols[spec.z_column], full, spec.z_column) if spec.z_column else np.full(n, np.nan)
    rows = np.arange(first, first + n, dtype=np.int64)
    if id_column:
        ids = np.array(["" if v is None else str(v) for v in cols[id_column]], dtype=object)
    else:
        ids = np.array([str(r) for r in rows], dtype=object)
    return {"mags": mags, "errors": errors, "z": z, "ids": ids, "rows": rows}


def screen_photometry(
    mags: np.ndarray, errors: np.ndarray | None, spec: CatalogueSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the bad-row policy (module docstring) to magnitudes and errors.

    Returns
    -------
    status : numpy.ndarray of str
        ``ok``, ``bad_magnitude`` or ``bad_error`` per row.
    error : numpy.ndarray of str
        ``""`` for good rows, else which columns failed and why.
    """
    mags = np.asarray(mags, dtype=np.float64)
    n = mags.shape[0]
    status = np.full(n, "ok", dtype=object)
    message = np.full(n, "", dtype=object)
    with np.errstate(invalid="ignore"):
        bad_m = ~np.isfinite(mags) | (np.abs(mags) >= MAG_SENTINEL)
        bad_e = np.zeros_like(bad_m)
        if errors is not None:
            e = np.asarray(errors, dtype=np.float64)
            bad_e = ~np.isfinite(e) | (e < 0) | (e >= MAG_SENTINEL)
    for i in np.flatnonzero(bad_m.any(1)):
        cols = [spec.bands[j] for j in np.flatnonzero(bad_m[i])]
        vals = ", ".join(f"{c}={mags[i, spec.bands.index(c)]:g}" for c in cols)
        status[i] = "bad_magnitude"
        message[i] = f"missing or non-finite magnitude: {vals}"
    if errors is not None:
        for i in np.flatnonzero(bad_e.any(1) & ~bad_m.any(1)):
            cols = [spec.errors[j] for j in np.flatnonzero(bad_e[i])]  # type: ignore[index]
            vals = ", ".join(
                f"{c}={errors[i, spec.errors.index(c)]:g}"  # type: ignore[union-attr]
                for c in cols
            )
            status[i] = "bad_error"
            message[i] = f"missing, negative or non-finite magnitude error: {vals}"
    return status, message


def plan_catalogue(
    url: str,
    spec: CatalogueSpec,
    *,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    store: Any = None,
) -> dict[str, Any]:
    """Cut a catalogue into row-range partitions (after checking its columns).

    For parquet, partitions are whole row groups, gathered until each holds at least
    ``partition_rows`` rows; other formats are cut every ``partition_rows`` rows.

    Returns
    -------
    dict
        ``{"data_url", "kind": "catalogue", "format", "total_rows", "partition_rows",
        "spec", "partitions": [...]}``; each partition has ``index``, ``kind``
        (``"catalogue"``), ``source_url``, ``source`` (file name), ``start``, ``stop``,
        ``rows`` (:meth:`astrokit.partitions.CatalogueRange.to_dict`).

    Raises
    ------
    MissingColumnError
        A column of ``spec`` is not in the file.
    CatalogueError
        ``partition_rows`` < 1, or the catalogue is empty.
    """
    if int(partition_rows) < 1:
        raise CatalogueError(f"partition_rows must be >= 1, got {partition_rows}")
    st, full = _resolve(url, store)
    check_columns(full, spec, store=st)
    total, groups = catalogue_rows(full, store=st)
    if total == 0:
        raise CatalogueError(f"{full}: the catalogue has no rows")
    fmt = catalogue_format(full)
    bounds = [0]
    if fmt == "parquet":
        acc = 0
        for rows in groups:
            acc += rows
            if acc - bounds[-1] >= partition_rows:
                bounds.append(acc)
        if bounds[-1] != total:
            bounds.append(total)
    else:
        bounds = [*range(0, total, int(partition_rows)), total]
    source = posixpath.basename(full.rstrip("/"))
    from astrokit.partitions import CatalogueRange

    partitions = [
        CatalogueRange(i, full, source, int(a), int(b)).to_dict()
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
        if b > a
    ]
    return {
        "data_url": url,
        "kind": "catalogue",
        "format": fmt,
        "total_rows": int(total),
        "partition_rows": int(partition_rows),
        "spec": spec.to_dict(),
        "partitions": partitions,
    }
