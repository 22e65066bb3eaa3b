"""Fixtures shared by the whole suite: a real S3 server on loopback, real spectra, artifacts.

Area-specific fixtures live in each test directory's own conftest.py.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Real LAMOST spectra committed with the tests (MIT, laspec; see the README there).
LAMOST_DATA = REPO / "tests" / "data" / "lamost"
ARTIFACTS = REPO / "test-artifacts"

# Real spectra shipped inside permissively licensed PyPI packages (DESIGN.md §4):
# (package, path inside the package, name in the test store)
PACKAGED_SPECTRA = [
    ("pydl", "pydlspec2d/tests/t/spPlate-4055-55359-0020.fits", "spPlate-4055-55359-0020.fits"),
    (
        "linetools",
        "spectra/tests/files/SDSSJ220248.31+123656.3.fits",
        "SDSSJ220248.31+123656.3.fits",
    ),
    (
        "specutils",
        "io/default_loaders/tests/desi_test_data/coadd-sv3-dark-26065.fits",
        "coadd-sv3-dark-26065.fits",
    ),
]

S3_TEST_CREDENTIALS = {"key": "astrokit-test", "secret": "astrokit-test-secret"}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"test data package {name!r} is not installed (pip install -e .[test])")
    return Path(spec.origin).parent


@pytest.fixture(scope="session")
def lamost_files() -> dict[str, Path]:
    """The two real LAMOST spectra committed under tests/data/lamost (LRS DR6, MRS DR7)."""
    base = LAMOST_DATA
    files = {
        "lrs": base / "spec-57287-KP193637N444141V03_sp10-161.fits.gz",
        "mrs": base / "med-58270-HIP95119KP01_sp12-076.fits.gz",
    }
    for path in files.values():
        if not path.exists():
            pytest.fail(f"LAMOST test file missing from the repository: {path}")
    return files


@pytest.fixture(scope="session")
def real_spectra_dir(tmp_path_factory) -> Path:
    """A temporary directory holding real SDSS/BOSS/DESI files copied from installed packages."""
    out = tmp_path_factory.mktemp("real-spectra")
    for package, rel, name in PACKAGED_SPECTRA:
        shutil.copy(_package_dir(package) / rel, out / name)
    return out


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-protocol server (moto's) on 127.0.0.1, as s3fs's own test-suite uses.

    Yields the endpoint URL. Credentials are fixed test values; moto accepts any.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port  # port 0: the OS picked a free one
    endpoint = f"http://127.0.0.1:{port}"
    old = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = S3_TEST_CREDENTIALS["key"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = S3_TEST_CREDENTIALS["secret"]
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_store_options(s3_server) -> dict:
    """storage_options for s3fs pointing at the loopback S3 server."""
    return {
        "key": S3_TEST_CREDENTIALS["key"],
        "secret": S3_TEST_CREDENTIALS["secret"],
        "client_kwargs": {"endpoint_url": s3_server},
    }


@pytest.fixture
def make_bucket(s3_server, s3_store_options):
    """Factory: create a fresh, empty bucket on the loopback server; returns ``s3://name``."""
    import s3fs

    created = []

    def _make(prefix: str = "astrokit") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        fs = s3fs.S3FileSystem(**s3_store_options)
        fs.mkdir(name)
        fs.invalidate_cache()
        created.append(name)
        return f"s3://{name}"

    yield _make


@pytest.fixture
def artifacts_dir(request) -> Path:
    """test-artifacts/<test name>/ for screenshots and logs kept after the run."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
    path = ARTIFACTS / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- added by the data engineer (issue 3): one store fixture over both backends ------------
@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def any_store(request, tmp_path):
    """An empty :class:`astrokit.store.Store`, once on ``file://`` and once on the S3 server.

    Its shared area is ``<root>/shared`` and its user area ``<root>/users/test``.
    """
    from astrokit.store import open_store

    if request.param == "file":
        root = f"file://{tmp_path / 'store'}"
        (tmp_path / "store").mkdir()
        return open_store(root, user_url=f"{root}/users/test")
    bucket = request.getfixturevalue("make_bucket")()
    return open_store(
        bucket,
        storage_options=request.getfixturevalue("s3_store_options"),
        user_url=f"{bucket}/users/test",
    )
