"""A "permission denied" in the StoreBrowser, from real refusals: EACCES and S3 AccessDenied.

Tests run as root, which the kernel lets read a mode-000 directory and which an S3 server
granting full rights never refuses, so neither ``chmod 000`` nor an all-powerful S3 user
can produce the error. Two real refusals are used instead:

* **file://**: the browser runs in a subprocess without CAP_DAC_OVERRIDE and
  CAP_DAC_READ_SEARCH (``setpriv --bounding-set``), the capabilities by which root ignores
  mode bits; the kernel then answers EACCES as it would to any other user. (Run as a
  non-root user, no capabilities need dropping.)
* **s3://**: the suite's real S3 server (SeaweedFS), which enforces what each identity of its
  configuration may do: one user may only read objects, another may only list.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from astrokit_widgets import StoreBrowser

from astrokit import env

# Runs the browser in the child process and prints what the user would see.
_CHILD = r"""
import json, os, sys
from astrokit_widgets import StoreBrowser

root, locked, secret_file = sys.argv[1:4]
try:  # first make sure the kernel really refuses this process
    os.listdir(locked)
    print(json.dumps({"not_denied": True}))
    sys.exit(0)
except PermissionError:
    pass
browser = StoreBrowser(f"file://{root}")
out = {"start_error": browser.error, "names": [e.name for e in browser.entries]}
browser.navigate(f"file://{locked}")
out.update(list_error=browser.error, list_html=browser._error.value, url=browser.url)
browser.navigate(f"file://{root}")
out["cleared"] = browser.error
out["kind"] = browser.select(f"file://{secret_file}")
out["select_error"] = browser.error
out["selected"] = browser.selected
print(json.dumps(out))
"""


def _without_dac_override() -> list[str]:
    """Command prefix under which the kernel enforces mode bits on this process."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    drop = "--bounding-set=-dac_override,-dac_read_search"
    if setpriv is None or subprocess.run([setpriv, drop, "true"], check=False).returncode:
        pytest.skip("running as root without a working setpriv: nothing makes the kernel refuse")
    return [setpriv, drop]


def test_local_permission_denied_is_a_sentence(tmp_path):
    root = tmp_path / "store"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "inside.fits").write_bytes(b"x")
    (root / "open.txt").write_text("hello")
    secret = root / "secret.fits"
    secret.write_bytes(b"SIMPLE  =                    T")
    (root / "locked").chmod(0o000)
    secret.chmod(0o000)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("ASTROKIT_")}
    try:
        proc = subprocess.run(
            [*_without_dac_override(), sys.executable, "-c", _CHILD,
             str(root), str(root / "locked"), str(secret)],
            capture_output=True, text=True, timeout=120, env=child_env, check=False,
        )  # fmt: skip
    finally:
        (root / "locked").chmod(0o755)  # so that pytest can clean up as any user
        secret.chmod(0o644)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out.get("not_denied"), "the child could still read the mode-000 directory"
    assert out["start_error"] == "" and out["names"] == ["locked", "open.txt", "secret.fits"]
    locked_url = f"file://{root / 'locked'}"
    # one readable sentence naming what was refused; the browser stays where it was
    assert out["list_error"] == (
        f"Permission denied while listing {locked_url}: permission denied by the store"
    )
    assert "Traceback" not in out["list_error"] and "Errno" not in out["list_error"]
    assert "Permission denied while listing" in out["list_html"]
    assert out["url"] == f"file://{root}"
    assert out["cleared"] == ""  # the next successful action clears the message
    assert out["select_error"].startswith("Permission denied while reading the header of")
    assert "secret.fits" in out["select_error"]
    assert out["kind"] == "fits" and out["selected"] == f"file://{secret}"


@pytest.fixture
def iam_s3(s3_server, s3_identities, make_bucket, s3_store_options):
    """A bucket on the loopback S3 server and two users with one right each.

    Yields ``{"endpoint", "bucket", "get_only": (key, secret), "list_only": (key, secret)}``.
    """
    from astrokit.store import open_store

    bucket = make_bucket("astrokit-locked")
    admin = open_store(bucket, storage_options=s3_store_options, allow_shared_writes=True)
    for key in ("shared/spectra/a.fits", "shared/notes.txt"):
        admin.write_bytes(admin.join(key), b"SIMPLE  =                    T")
    users = {role: (s3_identities[role].key, s3_identities[role].secret)
             for role in ("get_only", "list_only")}  # fmt: skip
    return {"endpoint": s3_server, "bucket": bucket.removeprefix("s3://"), **users}


def _browser(iam_s3, user, monkeypatch, url):
    for name in (env.STORE_URL, env.SHARED_URL, env.USER_URL, env.S3_ENDPOINT):
        monkeypatch.delenv(name, raising=False)
    key, secret = iam_s3[user]
    options = {"key": key, "secret": secret, "client_kwargs": {"endpoint_url": iam_s3["endpoint"]}}
    return StoreBrowser(url, storage_options=options), secret


@pytest.mark.s3
def test_s3_access_denied_while_listing(iam_s3, monkeypatch, widget_state):
    shared = f"s3://{iam_s3['bucket']}/shared"
    browser, secret = _browser(iam_s3, "get_only", monkeypatch, shared)
    assert browser.error.startswith(f"Permission denied while listing {shared}"), browser.error
    assert browser.entries == [] and "Traceback" not in browser.error
    assert "Permission denied" in browser._error.value
    state = widget_state(browser)
    assert secret not in browser.error and secret not in state
    # reading an object is allowed to this user: the refusal was the listing's
    assert browser.store.read_bytes(f"{shared}/notes.txt").startswith(b"SIMPLE")


@pytest.mark.s3
def test_s3_access_denied_while_opening(iam_s3, monkeypatch, widget_state):
    shared = f"s3://{iam_s3['bucket']}/shared"
    browser, secret = _browser(iam_s3, "list_only", monkeypatch, shared)
    assert browser.error == "" and [e.name for e in browser.entries] == ["notes.txt", "spectra"]
    browser.navigate(f"{shared}/spectra")
    kind = browser.select(f"{shared}/spectra/a.fits")
    assert kind == "fits"
    assert browser.error.startswith(
        f"Permission denied while reading the header of {shared}/spectra/a.fits"
    ), browser.error
    assert secret not in browser.error and secret not in widget_state(browser)
