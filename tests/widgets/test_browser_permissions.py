"""A "permission denied" in the StoreBrowser, from real refusals: EACCES and S3 AccessDenied.

Tests run as root, which the kernel lets read a mode-000 directory and which an S3 server
without access control never refuses, so neither ``chmod 000`` nor the shared moto server
can produce the error. Two real refusals are used instead:

* **file://**: the browser runs in a subprocess without CAP_DAC_OVERRIDE and
  CAP_DAC_READ_SEARCH (``setpriv --bounding-set``), the capabilities by which root ignores
  mode bits; the kernel then answers EACCES as it would to any other user. (Run as a
  non-root user, no capabilities need dropping.)
* **s3://**: a moto server in its own process with IAM enforcement switched on
  (moto's ``/moto-api/reset-auth``; a process-wide setting, hence not the shared server),
  and users whose policies allow only reading objects, or only listing.
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


@pytest.fixture(scope="module")
def iam_s3():
    """A moto S3+IAM server in its own process, enforcing IAM policies once seeded.

    Yields ``{"endpoint", "bucket", "get_only": (key, secret), "list_only": (key, secret)}``.
    """
    import boto3
    import requests

    child = (
        "import sys\n"
        "from moto.server import ThreadedMotoServer\n"
        "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
        "s.start()\n"
        "print(s._server.server_port, flush=True)\n"
        "sys.stdin.read()\n"  # runs until the test closes our end of the pipe
        "s.stop()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        endpoint = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        admin = {
            "endpoint_url": endpoint, "region_name": "us-east-1",
            "aws_access_key_id": "admin", "aws_secret_access_key": "admin",
        }  # fmt: skip
        s3, iam = boto3.client("s3", **admin), boto3.client("iam", **admin)
        bucket = "astrokit-locked"
        s3.create_bucket(Bucket=bucket)
        for key in ("shared/spectra/a.fits", "shared/notes.txt"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"SIMPLE  =                    T")
        users = {}
        for user, actions in (("get_only", ["s3:GetObject"]), ("list_only", ["s3:ListBucket"])):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=json.dumps(policy))
            users[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        # from now on every request is authenticated and checked against the IAM policies
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        yield {"endpoint": endpoint, "bucket": bucket, **users}
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
