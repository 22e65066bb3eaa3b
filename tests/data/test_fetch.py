"""``fetch_sdss`` through astroquery's real code path against recorded responses on loopback.

A small HTTP server on 127.0.0.1 plays SkyServer (CSV query results from
``tests/data/recorded``) and the SAS (spec-*.fits built from a real BOSS plate, and a bz2
imaging frame); astroquery is pointed at it with its own base-URL configuration.
"""

from __future__ import annotations

import bz2
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from astropy.io import fits

from astrokit.cli import main
from astrokit.fetch import FetchError, fetch_sdss
from astrokit.formats import read_spectrum

RECORDED = Path(__file__).parent / "recorded"


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
    for fld in (91, 92):
        files[f"/sas/dr17/eboss/photoObj/frames/301/3704/3/frame-r-003704-3-{fld:04d}.fits.bz2"] = (
            bz2.compress(frame.getvalue())
        )
    csv = (RECORDED / "sdss_specobj.csv").read_bytes()
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

        def do_GET(self):
            parts = urlsplit(self.path)
            requests.append(("GET", parts.path, parse_qs(parts.query)))
            if parts.path.lower().endswith("x_results.aspx"):
                self._reply(csv, "text/plain")
            else:
                self._reply(files.get(parts.path))

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            requests.append(("POST", urlsplit(self.path).path, {"body": body}))
            self._reply(csv, "text/plain")

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


def test_fetch_by_sql_spectra_and_images(any_store, fake_sdss):
    out = any_store.join("users/test/sdss")
    sql = "SELECT TOP 3 ra, dec, z, class, plate, mjd, fiberID, run2d FROM specObj"
    report = fetch_sdss(
        out, sql=sql, images=True, bands="r", store=any_store,
        skyserver_url=fake_sdss["skyserver"], sas_url=fake_sdss["sas"],
    )  # fmt: skip
    assert report.rows == 3
    assert report.spectra == ["spec-4055-55359-0004.fits", "spec-4055-55359-0007.fits"]
    assert [f["file"] for f in report.failed] == ["spec-4055-55359-0009.fits"]  # not served
    assert report.images == ["frame-r-003704-3-0091.fits", "frame-r-003704-3-0091.fits",
                             "frame-r-003704-3-0092.fits"]  # fmt: skip
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


def test_fetch_errors(tmp_path, fake_sdss):
    with pytest.raises(FetchError, match="exactly one"):
        fetch_sdss(f"file://{tmp_path}/x")
    with pytest.raises(FetchError, match="SDSS query failed"):
        fetch_sdss(f"file://{tmp_path}/x", sql="SELECT 1", skyserver_url="http://127.0.0.1:9")
