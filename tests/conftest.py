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
from helpers.browser import launch_chromium
from helpers.cluster import local_client
from helpers.s3 import S3Identity, SeaweedS3

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


#: Users of the test S3 server: the suite's own (full rights) and two that may do one thing
#: each, for the widgets' "permission denied" tests (tests/widgets/test_browser_permissions.py).
S3_IDENTITIES = {
    "admin": S3Identity("astrokit-test", S3_TEST_CREDENTIALS["key"], S3_TEST_CREDENTIALS["secret"]),
    "get_only": S3Identity("get-only", "astrokit-get-only", "get-only-secret", ("Read",)),
    "list_only": S3Identity("list-only", "astrokit-list-only", "list-only-secret", ("List",)),
    # a recognisable secret, to show that none leaks into reprs or logs
    "redaction": S3Identity("redaction", "astrokit-redaction", "sUp3r-s3cret-VALUE"),
}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS's ``weed mini``) on 127.0.0.1, for the whole session.

    Yields the endpoint URL. It enforces the keys of :data:`S3_IDENTITIES`; the suite's own
    pair is also exported as ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` meanwhile.
    """
    server = SeaweedS3(tmp_path_factory.mktemp("s3-server"), list(S3_IDENTITIES.values()))
    old = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    with server:
        os.environ["AWS_ACCESS_KEY_ID"] = S3_TEST_CREDENTIALS["key"]
        os.environ["AWS_SECRET_ACCESS_KEY"] = S3_TEST_CREDENTIALS["secret"]
        try:
            yield server.endpoint
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def s3_identities(s3_server) -> dict[str, S3Identity]:
    """The users the loopback S3 server accepts, by role (see :data:`S3_IDENTITIES`)."""
    return dict(S3_IDENTITIES)


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


@pytest.fixture(scope="module")
def chromium():
    """Headless chromium through Playwright (:mod:`helpers.browser`), one per test module.

    Skipped without chromium on a developer's machine; a failure with ``CI=true``.
    """
    with launch_chromium() as browser:
        yield browser


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


@pytest.fixture(scope="module")
def cluster_client():
    """A real LocalCluster: 2 worker processes x 1 thread on 127.0.0.1."""
    with local_client() as client:
        yield client
