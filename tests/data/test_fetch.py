"""``fetch_sdss`` through astroquery's real code path against recorded responses on loopback.

A small HTTP server on 127.0.0.1 plays SkyServer and the SAS. SkyServer answers each query
from the rows recorded in ``tests/data/recorded`` *according to the SQL it received*: it
returns only the columns the SELECT list names (``TOP n`` rows), checks each ``p.``/``s.``
column against the real PhotoObjAll/SpecObjAll schemas that astroquery ships, and answers
SkyServer's ``error_message`` for an unknown or ambiguous column -- so a query that fails to
select what ``fetch_sdss`` later needs fails here as it would against the real service. The
SAS serves spec-*.fits built from a real BOSS plate and bz2 imaging frames.
"""

from __future__ import annotations

import bz2
import csv
import email.parser
import email.policy
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.data import get_pkg_data_contents

from astrokit.cli import main
from astrokit.fetch import FetchError, fetch_sdss
from astrokit.formats import read_spectrum

RECORDED = Path(__file__).parent / "recorded"


def _schema(table: str) -> list[dict]:
    """fDocColumns rows of a real SkyServer table (astroquery's own DR12 copy)."""
    doc = json.loads(get_pkg_data_contents(f"data/{table}_dr12.json", package="astroquery.sdss"))
    return doc[0]["Rows"]


SCHEMAS = {name: _schema(name) for name in ("PhotoObjAll", "SpecObjAll")}
COLUMNS = {name: {r["name"].lower() for r in rows} for name, rows in SCHEMAS.items()}


class SqlError(Exception):
    """What SQL Server would refuse; the fake answers it as SkyServer does."""


def _split_select(items: str) -> list[str]:
    """Split a SELECT list on top-level commas (not those inside function calls)."""
    out, depth, cur = [], 0, ""
    for ch in items:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*out, cur.strip()] if cur.strip() else out


def _table_of(name: str) -> str | None:
    # PhotoObj/PhotoObjAll/PhotoPrimary are views of one table; SpecObj/SpecObjAll likewise
    low = name.lower()
    if low.startswith("photo"):
        return "PhotoObjAll"
    return "SpecObjAll" if low.startswith("spec") else None


_SELECT = re.compile(
    r"\s*SELECT\s+(?:DISTINCT\s+)?(?:TOP\s+(\d+)\s+)?(.*?)\s+FROM\s+(.*)$", re.I | re.S
)
# "FROM t", "JOIN t AS a", "JOIN t a ON ...": the table and its alias, if any
_TABLE = re.compile(
    r"(?:FROM|JOIN)\s+([#\w.]+)(?:\s+AS)?(?:\s+(?!ON\b|JOIN\b|WHERE\b|ORDER\b)(\w+))?", re.I
)


def answer_sql(sql: str, rows: list[dict[str, str]]) -> str:
    """The CSV SkyServer would return for ``sql`` over the recorded ``rows``."""
    m = _SELECT.match(sql)
    if m is None:
        raise SqlError(f"Incorrect syntax near {sql[:40]!r}")
    top, select, rest = m.groups()
    aliases = {}  # alias (or table name) -> schema
    for table, alias in _TABLE.findall("FROM " + rest):
        schema = _table_of(table.split(".")[-1])
        if schema:
            aliases[(alias or table).lower()] = schema
    recorded = {k.lower(): k for k in rows[0]}
    out_names, sources = [], []
    for item in _split_select(select):
        am = re.match(r"(.*?)\s+AS\s+(\w+)$", item, re.I | re.S)
        expr, name = (am.group(1).strip(), am.group(2)) if am else (item, None)
        cm = re.fullmatch(r"(?:(\w+)\.)?(\w+)", expr)
        if cm is None:
            raise SqlError(f"the fake SkyServer evaluates plain columns only, not {expr!r}")
        prefix, col = cm.groups()
        if prefix is not None:
            schema = aliases.get(prefix.lower())
            if schema is None:
                raise SqlError(f"The multi-part identifier {expr!r} could not be bound.")
            if col.lower() not in COLUMNS[schema]:
                raise SqlError(f"Invalid column name '{col}' ({schema}).")
        else:
            owners = [a for a, sch in aliases.items() if col.lower() in COLUMNS[sch]]
            if not owners:
                raise SqlError(f"Invalid column name '{col}'.")
            if len({aliases[a] for a in owners}) > 1:
                raise SqlError(f"Ambiguous column name '{col}'.")
        if col.lower() not in recorded:
            raise SqlError(f"no recorded values for column {col!r} (extend sdss_specobj.csv)")
        out_names.append(name or col)  # SQL Server names a column as the query wrote it
        sources.append(recorded[col.lower()])
    chosen = rows if top is None else rows[: int(top)]
    buf = io.StringIO()
    buf.write("#Table1\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(out_names)
    writer.writerows([row[c] for c in sources] for row in chosen)
    return buf.getvalue()


def _form_field(body: bytes, content_type: str, field: str) -> str | None:
    """One field of a multipart/form-data body (astroquery POSTs CrossID queries so)."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") == field:
            return part.get_payload(decode=True).decode().strip()
    return None


def _spec_file(plate_path: Path, fiber: int, z: float, cls: str) -> bytes:
    with fits.open(plate_path) as h:
        flux = h[0].data[fiber - 1].astype(np.float32)
        loglam = h[0].header["COEFF0"] + h[0].header["COEFF1"] * np.arange(flux.size)
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column("flux", "E", array=flux),
            fits.Column("loglam", "E", array=loglam.astype(np.float32)),
            fits.Column("ivar", "E", array=np.ones_like(flux)),
            fits.Column("and_mask", "J", array=np.zeros(flux.size, np.int32)),
        ],
        name="COADD",
    )
    specobj = fits.BinTableHDU.from_columns(
        [fits.Column("Z", "E", array=[z]), fits.Column("CLASS", "6A", array=[cls])],
        name="SPECOBJ",
    )
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), coadd, specobj]).writeto(buf)
    return buf.getvalue()


@pytest.fixture
def fake_sdss(real_spectra_dir):
    plate = real_spectra_dir / "spPlate-4055-55359-0020.fits"
    files = {
        "/sas/dr17/sdss/spectro/redux/v5_7_0/spectra/full/4055/spec-4055-55359-0004.fits":
            _spec_file(plate, 4, 0.3521, "GALAXY"),
        "/sas/dr17/sdss/spectro/redux/v5_7_0/spectra/full/4055/spec-4055-55359-0007.fits":
            _spec_file(plate, 7, 1.1043, "QSO"),
    }  # fmt: skip
    frame = io.BytesIO()
    fits.PrimaryHDU(np.arange(64, dtype=np.float32).reshape(8, 8)).writeto(frame)
    frames = "/sas/dr17/eboss/photoObj/frames/301/3704/3"
    for band in "gr":
        for fld in (91, 92):
            files[f"{frames}/frame-{band}-003704-3-{fld:04d}.fits.bz2"] = bz2.compress(
                frame.getvalue()
            )
    with (RECORDED / "sdss_specobj.csv").open() as fh:
        recorded = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    requests: list[tuple[str, str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bytes | None, ctype: str = "application/octet-stream"):
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer_query(self, sql: str | None):
            if sql is None:
                self._reply(b"error_message: no query in the request", "text/plain")
                return
            doc = re.search(r"fDocColumns\('(\w+)'\)", sql)
            if doc:  # astroquery's field-name lookup, asked for as JSON
                rows = SCHEMAS.get(doc.group(1))
                body = json.dumps([{"TableName": "Table1", "Rows": rows}]) if rows else "[]"
                self._reply(body.encode(), "application/json")
                return
            try:
                text = answer_sql(sql, recorded)
            except SqlError as exc:
                # SkyServer's CSV error page; astroquery raises RemoteServiceError on it
                text = f"error_message: {exc}\n"
            self._reply(text.encode(), "text/plain")

        def do_GET(self):
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            requests.append(("GET", parts.path, query))
            if parts.path.lower().endswith("x_results.aspx"):
                self._answer_query(query.get("cmd", [None])[0])
            else:
                self._reply(files.get(parts.path))

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            sql = _form_field(body, self.headers.get("Content-Type", ""), "uquery")
            requests.append(("POST", urlsplit(self.path).path, {"body": body, "uquery": sql}))
            self._answer_query(sql)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield {"skyserver": base, "sas": f"{base}/sas", "requests": requests}
    finally:
        server.shutdown()
        server.server_close()


def _frame_requests(fake_sdss) -> list[str]:
    return [r[1].rsplit("/", 1)[-1] for r in fake_sdss["requests"] if "/frames/" in r[1]]


def test_fetch_by_sql_spectra_and_images(any_store, fake_sdss):
    out = any_store.join("users/test/sdss")
    sql = (
        "SELECT TOP 3 s.ra, s.dec, s.z, s.class, s.plate, s.mjd, s.fiberID, s.run2d, "
        "p.run, p.rerun, p.camcol, p.field "
        "FROM SpecObj AS s JOIN PhotoObj AS p ON p.objID = s.bestObjID"
    )
    report = fetch_sdss(
        out, sql=sql, images=True, bands="r", store=any_store,
        skyserver_url=fake_sdss["skyserver"], sas_url=fake_sdss["sas"],
    )  # fmt: skip
    assert report.rows == 3
    assert report.spectra == ["spec-4055-55359-0004.fits", "spec-4055-55359-0007.fits"]
    assert [f["file"] for f in report.failed] == ["spec-4055-55359-0009.fits"]  # not served
    # rows 1 and 2 lie in the same field: its frame is fetched and written once
    assert report.images == ["frame-r-003704-3-0091.fits", "frame-r-003704-3-0092.fits"]
    assert _frame_requests(fake_sdss) == [f"{n}.bz2" for n in report.images]
    # the SQL went to SkyServer's search endpoint through astroquery
    sql_calls = [r for r in fake_sdss["requests"] if r[1].endswith("x_results.aspx")]
    assert sql_calls and sql_calls[0][2]["cmd"][0].strip().startswith("SELECT TOP 3")
    spec = read_spectrum(f"{out}/spectra/spec-4055-55359-0007.fits", store=any_store)
    assert spec.meta["redshift"] == pytest.approx(1.1043, rel=1e-5)
    assert spec.meta["object_class"] == "QSO"
    frame = any_store.read_bytes(f"{out}/images/frame-r-003704-3-0092.fits")
    assert fits.HDUList.fromstring(frame)[0].data.sum() == sum(range(64))  # decompressed
    doc = json.loads(any_store.read_bytes(f"{out}/fetch_report.json"))
    assert len(doc["failed"]) == 1


def test_fetch_by_position_cli(tmp_path, fake_sdss, capsys):
    out = f"file://{tmp_path}/sdss"
    rc = main([
        "fetch", "sdss", "--ra", "181.2471", "--dec", "41.4306", "--radius", "5",
        "--out", out, "--limit", "2",
        "--skyserver-url", fake_sdss["skyserver"], "--sas-url", fake_sdss["sas"],
    ])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["rows"] == 2 and len(report["spectra"]) == 2
    posts = [r for r in fake_sdss["requests"] if r[0] == "POST"]
    assert posts and posts[0][1].endswith("X_Results.aspx")  # astroquery's cross-id endpoint


def test_fetch_by_position_with_images(tmp_path, fake_sdss, monkeypatch):
    """A cone search must select where each object's frame is (PhotoObjAll's run..field)."""
    import pyarrow.parquet as pq

    import astrokit.fetch

    out = f"file://{tmp_path}/sdss"
    kwargs = {
        "coordinates": "12h04m59.3s +41d25m50s", "radius": 5, "images": True, "bands": "gr",
        "spectra": False, "skyserver_url": fake_sdss["skyserver"], "sas_url": fake_sdss["sas"],
    }  # fmt: skip
    report = fetch_sdss(out, **kwargs)
    (query,) = [r[2]["uquery"] for r in fake_sdss["requests"] if r[0] == "POST"]
    assert all(f"p.{c}" in query for c in ("run", "rerun", "camcol", "field")), query
    assert report.rows == 3 and report.failed == []
    # three rows in two fields, two bands: four frames, each downloaded once
    assert report.images == [
        "frame-g-003704-3-0091.fits", "frame-r-003704-3-0091.fits",
        "frame-g-003704-3-0092.fits", "frame-r-003704-3-0092.fits",
    ]  # fmt: skip
    assert sorted(_frame_requests(fake_sdss)) == sorted(f"{n}.bz2" for n in report.images)
    catalog = pq.read_table(tmp_path / "sdss" / "catalog.parquet")
    assert {"run", "rerun", "camcol", "field", "z", "plate"} <= set(catalog.column_names)
    assert catalog.column("field").to_pylist() == [91, 91, 92]

    # The fake answers the columns asked for: without the photoobj fields (the query
    # fetch_sdss used to send) the frames cannot be located, and that is what it reports.
    monkeypatch.setattr(astrokit.fetch, "PHOTO_FIELDS", None)
    with pytest.raises(FetchError, match=r"images need columns.*'camcol', 'field', 'rerun', 'run'"):
        fetch_sdss(f"file://{tmp_path}/again", **kwargs)


def test_fetch_errors(tmp_path, fake_sdss):
    with pytest.raises(FetchError, match="exactly one"):
        fetch_sdss(f"file://{tmp_path}/x")
    with pytest.raises(FetchError, match="SDSS query failed"):
        fetch_sdss(f"file://{tmp_path}/x", sql="SELECT 1", skyserver_url="http://127.0.0.1:9")
    urls = {"skyserver_url": fake_sdss["skyserver"], "sas_url": fake_sdss["sas"]}
    # SpecObjAll has run2d but no run: SkyServer refuses the column, and so does the fake
    with pytest.raises(FetchError, match=r"SDSS query failed.*Invalid column name 'run'"):
        fetch_sdss(f"file://{tmp_path}/x", sql="SELECT s.run FROM SpecObjAll AS s", **urls)
    # a query that does not select what images need is refused before any download
    with pytest.raises(FetchError, match=r"images need columns run, rerun, camcol, field"):
        fetch_sdss(
            f"file://{tmp_path}/x", sql="SELECT TOP 3 plate, mjd, fiberID, run2d FROM SpecObj",
            spectra=False, images=True, **urls,
        )  # fmt: skip
    assert _frame_requests(fake_sdss) == []
