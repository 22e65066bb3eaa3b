"""Per-user passwords on the embedded default, through the hub's real pages.

NativeAuthenticator (with AstroKit's first-admin bootstrap) as `make run` configures it:
someone signs up, cannot log in until the admin authorizes them, and the admin can reset a
password; the first admin logs in with the generated, root-only password file.
"""

from __future__ import annotations

import re

import pytest
import requests
from helpers.hub import HubError, HubProcess


def _xsrf(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=30)
    assert page.status_code == 200, page.status_code
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess(tmp_path_factory.mktemp("auth"), users=[]) as hub:
        yield hub


def test_the_first_admin_logs_in_with_the_generated_password(hub):
    password_file = hub.run_dir / "admin-password"
    assert password_file.stat().st_mode & 0o077 == 0
    admin = hub.login("admin", password_file.read_text().strip())
    assert admin.get(f"{hub.url}/hub/authorize", timeout=30).status_code == 200
    with pytest.raises(HubError, match="refused"):
        hub.login("admin", "not-the-password")


def test_signup_needs_the_admins_authorization_and_the_admin_resets_passwords(hub):
    newcomer = requests.Session()
    signup = f"{hub.url}/hub/signup"
    r = newcomer.post(
        signup,
        data={
            "username": "frank",
            "signup_password": "frank-secret-1",
            "signup_password_confirmation": "frank-secret-1",
            "_xsrf": _xsrf(newcomer, signup),
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text[:500]
    with pytest.raises(HubError, match="refused"):
        hub.login("frank", "frank-secret-1")  # not authorized yet

    admin = hub.login("admin", (hub.run_dir / "admin-password").read_text().strip())
    r = admin.get(f"{hub.url}/hub/authorize/frank", timeout=30, allow_redirects=False)
    assert r.status_code == 302, r.status_code
    assert hub.login("frank", "frank-secret-1")

    reset = f"{hub.url}/hub/change-password/frank"
    r = admin.post(
        reset,
        data={
            "new_password": "frank-secret-2",
            "new_password_confirmation": "frank-secret-2",
            "_xsrf": _xsrf(admin, reset),
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text[:500]
    assert hub.login("frank", "frank-secret-2")
    with pytest.raises(HubError, match="refused"):
        hub.login("frank", "frank-secret-1")


def test_a_user_cannot_authorize_themselves(hub):
    frank = hub.login("frank", "frank-secret-2")
    r = frank.get(f"{hub.url}/hub/authorize/frank", timeout=30, allow_redirects=False)
    assert r.status_code == 403, r.status_code


def test_names_that_cannot_be_accounts_are_refused_at_signup(hub):
    session = requests.Session()
    signup = f"{hub.url}/hub/signup"
    r = session.post(
        signup,
        data={
            "username": "Not An Account",
            "signup_password": "whatever-123",
            "signup_password_confirmation": "whatever-123",
            "_xsrf": _xsrf(session, signup),
        },
        timeout=30,
    )
    assert "information has been sent" not in r.text
    r = hub.api("GET", "/users/not-an-account")
    assert r.status_code == 404
