"""A real JupyterHub for tests: its own subprocess, configurable-http-proxy, AstroKit's spawner.

The hub loads the embedded default configuration (``deploy/local/jupyterhub_config.py``) and
then overrides only what a test needs: free loopback ports, a temporary run directory, an
admin API token. Typical use::

    from tests.helpers.hub import HubProcess

    with HubProcess(tmp_path, users=["alice", "bob"]) as hub:
        hub.spawn("alice", {"profile": "small"})
        env = hub.server_env("alice")
        token = hub.token_for("alice")
        r = hub.get(f"/user/alice/proxy/{port}/status", token=token)

A module-scoped fixture sharing one hub keeps integration tests fast; see
``tests/spawner/test_hub_integration.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import requests

from helpers.polling import poll, wait_until

REPO = Path(__file__).resolve().parents[2]
DEPLOY_CONFIG = REPO / "deploy" / "local" / "jupyterhub_config.py"
CHP_LOCAL = REPO / "deploy" / "local" / "node_modules" / ".bin" / "configurable-http-proxy"
VENV_BIN = Path(sys.executable).parent

__all__ = ["HubError", "HubProcess", "SpawnFailed", "find_chp", "free_port"]


class HubError(RuntimeError):
    """The hub did not start, answer or do what was asked in time."""


class SpawnFailed(HubError):
    """A spawn was refused or failed; ``status`` and ``message`` are the hub's answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"spawn failed ({status}): {message}")
        self.status = status
        self.message = message


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_chp() -> str:
    """Path of configurable-http-proxy: deploy/local/node_modules first, then PATH."""
    if CHP_LOCAL.exists():
        return str(CHP_LOCAL)
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    raise HubError(
        "configurable-http-proxy not found: run `make install` (npm install in deploy/local)"
    )


class HubProcess:
    """A running JupyterHub with AstroKit's spawner, for tests.

    Parameters
    ----------
    workdir
        Empty directory for the hub's config, database, logs and run dir.
    users
        Users created at start (through the REST API).
    config_overrides
        Python appended to the generated config (``c.AstroKitSpawner.... = ...``).
    env
        Extra environment for the hub process (inherited by nothing else: the spawner passes
        only its own whitelist on to servers).
    startup_timeout
        Seconds to wait for the hub's API.

    Attributes
    ----------
    url
        Public URL of the hub (through the proxy), e.g. ``http://127.0.0.1:PORT``.
    admin_token
        An API token with the admin role (a service's token).
    passwords
        Each user's password, for browser logins (``password_for(user)``).
    account_prefix
        Prefix of the system accounts this hub's users run as (when the tests run as root).
    run_dir, store_url, log_path
        Where state, the file:// store and the hub's log are.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        users: Iterable[str] = ("alice", "bob"),
        config_overrides: str = "",
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The run dir holds the users' homes and store: it must be reachable by their
        # accounts, which pytest's own 0700 temporary root is not.
        self._run_parent = Path(tempfile.mkdtemp(prefix="astrokit-hub-"))
        self._run_parent.chmod(0o711)
        self.run_dir = self._run_parent / "run"
        self.store_url = f"file://{self.run_dir / 'store'}"
        self.users = list(users)
        self.config_overrides = config_overrides
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(16)
        # Every user has a password of their own (the hub's NativeAuthenticator), created at
        # hub start from root-only files, as `make run` does for the admin.
        self.passwords = {user: "pw-" + secrets.token_hex(8) for user in self.users}
        # Accounts the hub creates (when root) carry a prefix of this hub alone, and
        # close() removes them.
        self.account_prefix = f"akt{secrets.token_hex(2)}-"
        self.log_path = self.workdir / "hub.log"
        self.config_path = self.workdir / "jupyterhub_config.py"
        self.proc: subprocess.Popen | None = None
        self._tokens: dict[str, str] = {}
        self._sessions: list[requests.Session] = []
        self._write_config()

    # --- lifecycle ------------------------------------------------------------------
    def _write_config(self) -> None:
        self.config_path.write_text(
            f"""# generated by tests/helpers/hub.py
c = get_config()  # noqa: F821
load_subconfig({str(DEPLOY_CONFIG)!r})  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_port = {self.hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{find_chp()!r}]
c.AstroKitAuthenticator.password_files.update({self._password_files()!r})
c.AstroKitSpawner.system_user_prefix = {self.account_prefix!r}
c.JupyterHub.services.append({{"name": "astrokit-test-admin", "api_token": {self.admin_token!r}}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["astrokit-test-admin"]}})
c.AstroKitSpawner.cluster_idle_timeout = 0  # tests count workers; idle release has its own test
{self.config_overrides}
"""
        )

    def _password_files(self) -> dict[str, str]:
        folder = self.workdir / "passwords"
        folder.mkdir(mode=0o700, exist_ok=True)
        files = {}
        for user, password in self.passwords.items():
            path = folder / user
            path.write_text(password)
            path.chmod(0o600)
            files[user] = str(path)
        return files

    def password_for(self, user: str) -> str:
        """The password ``user`` logs in with."""
        return self.passwords[user]

    def login(self, user: str, password: str | None = None) -> requests.Session:
        """Log in through the hub's login page like a browser; return the session.

        Raises
        ------
        HubError
            If the hub does not accept the password (the page is shown again).
        """
        session = requests.Session()
        # Kept (and closed by close()): a dropped session's pooled socket would be collected
        # at some later garbage collection, as a ResourceWarning in whatever test runs then.
        self._sessions.append(session)
        page = session.get(f"{self.url}/hub/login", timeout=30)
        match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        data = {
            "username": user,
            "password": self.password_for(user) if password is None else password,
        }
        if match:
            data["_xsrf"] = match.group(1)
        r = session.post(f"{self.url}/hub/login", data=data, allow_redirects=False, timeout=30)
        if r.status_code != 302:
            raise HubError(f"login of {user} refused ({r.status_code})")
        return session

    def account(self, user: str) -> str:
        """The system account ``user``'s servers run as (when the hub is root)."""
        return f"{self.account_prefix}{user}"

    def start(self) -> HubProcess:
        """Start the hub and wait until its API answers; create the configured users."""
        if self.proc is not None and self.proc.poll() is None:
            raise HubError("hub already running")
        env = dict(os.environ)
        env.update(self.extra_env)
        env["ASTROKIT_RUN_DIR"] = str(self.run_dir)
        env["ASTROKIT_STORE_URL"] = self.store_url
        env["PATH"] = os.pathsep.join([str(CHP_LOCAL.parent), str(VENV_BIN), env.get("PATH", "")])
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "jupyterhub"), "-f", str(self.config_path)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        for _ in poll(self.startup_timeout):
            if self.proc.poll() is not None:
                raise HubError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = requests.get(f"{self.url}/hub/api/", timeout=2)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
        else:
            tail = self.log_tail()
            self.stop()  # a hub that never answered must not outlive the test that started it
            raise HubError(f"hub API not up within {self.startup_timeout} s:\n{tail}")
        for user in self.users:
            self.create_user(user)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the hub process only (servers keep running: ``cleanup_servers=False``)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start the hub, keeping its database (running servers are restored)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop every server through the API, then the hub; kill anything left (safety net)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                for user in self.api("GET", "/users").json():
                    for name in user.get("servers", {}):
                        self.stop_server(user["name"], name, timeout=60)
            except (requests.RequestException, HubError, ValueError):
                pass
        self.stop()
        for session in self._sessions:
            session.close()
        self._sessions.clear()
        for proc in self.leftover_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.remove_accounts()
        shutil.rmtree(self._run_parent, ignore_errors=True)

    def remove_accounts(self) -> None:
        """Delete the system accounts this hub created (its prefix alone); homes go too."""
        import pwd

        for entry in pwd.getpwall():
            if entry.pw_name.startswith(self.account_prefix):
                for proc in psutil.process_iter(["uids"]):
                    with contextlib.suppress(psutil.Error):
                        if proc.info["uids"] and proc.info["uids"].real == entry.pw_uid:
                            proc.kill()
                subprocess.run(["userdel", entry.pw_name], check=False, capture_output=True)
                subprocess.run(["groupdel", entry.pw_name], check=False, capture_output=True)

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 60) -> str:
        """Last lines of the hub's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- REST API -------------------------------------------------------------------
    def api(self, method: str, path: str, *, token: str | None = None, **kwargs: Any):
        """Call ``/hub/api<path>`` with ``token`` (default: the admin token)."""
        headers = {"Authorization": f"token {token or self.admin_token}"}
        kwargs.setdefault("timeout", 30)
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, **kwargs)

    def get(self, path: str, *, token: str | None = None, **kwargs: Any):
        """GET a path through the proxy (e.g. ``/user/alice/proxy/PORT/status``)."""
        headers = {"Authorization": f"token {token}"} if token else {}
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        return requests.get(f"{self.url}{path}", headers=headers, **kwargs)

    def create_user(self, name: str, *, admin: bool = False) -> None:
        """Create a user (no error if it exists)."""
        r = self.api("POST", f"/users/{quote(name)}", json={"admin": admin})
        if r.status_code not in (201, 409):
            raise HubError(f"creating user {name}: {r.status_code} {r.text}")

    def add_to_group(self, group: str, users: Iterable[str]) -> None:
        """Create ``group`` if needed and add ``users`` to it."""
        r = self.api("POST", f"/groups/{quote(group)}", json={})
        if r.status_code not in (201, 409):
            raise HubError(f"creating group {group}: {r.status_code} {r.text}")
        r = self.api("POST", f"/groups/{quote(group)}/users", json={"users": list(users)})
        if r.status_code != 200:
            raise HubError(f"adding {users} to {group}: {r.status_code} {r.text}")

    def token_for(self, user: str) -> str:
        """An API token of ``user`` (created once, then cached)."""
        if user not in self._tokens:
            r = self.api("POST", f"/users/{quote(user)}/tokens", json={"note": "astrokit tests"})
            if r.status_code != 201:
                raise HubError(f"token for {user}: {r.status_code} {r.text}")
            self._tokens[user] = r.json()["token"]
        return self._tokens[user]

    @staticmethod
    def _server_path(user: str, server_name: str) -> str:
        base = f"/users/{quote(user)}"
        return f"{base}/servers/{quote(server_name)}" if server_name else f"{base}/server"

    def request_spawn(
        self,
        user: str,
        options: Mapping[str, Any] | None = None,
        *,
        server_name: str = "",
        token: str | None = None,
    ):
        """POST the spawn request and return the raw response (201 ready, 202 pending)."""
        return self.api(
            "POST", self._server_path(user, server_name), token=token, json=dict(options or {})
        )

    def server(self, user: str, server_name: str = "") -> dict[str, Any] | None:
        """The server model (with spawner ``state``; admin view) or ``None`` if not running."""
        r = self.api("GET", f"/users/{quote(user)}")
        if r.status_code != 200:
            raise HubError(f"reading user {user}: {r.status_code} {r.text}")
        return r.json().get("servers", {}).get(server_name)

    def _failure_message(self, user: str, server_name: str) -> str:
        """The failure message from the progress stream of a failed spawn."""
        path = self._server_path(user, server_name) + "/progress"
        try:
            with self.api("GET", path, stream=True, timeout=10) as r:  # closed: no leaked socket
                for line in r.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        event = json.loads(line[5:])
                        if event.get("failed"):
                            return str(event.get("message", ""))
        except (requests.RequestException, ValueError):
            pass
        return "server is not running (no failure message)"

    def spawn(
        self,
        user: str,
        options: Mapping[str, Any] | None = None,
        *,
        server_name: str = "",
        timeout: float = 180.0,
    ) -> dict[str, Any]:
        """Spawn and wait until ready; returns the server model.

        Raises
        ------
        SpawnFailed
            If the hub refuses the request or the spawn fails.
        """
        r = self.request_spawn(user, options, server_name=server_name)
        if r.status_code not in (201, 202):
            try:
                message = r.json().get("message", r.text)
            except ValueError:
                message = r.text
            raise SpawnFailed(r.status_code, message)
        return self.wait_ready(user, server_name, timeout=timeout)

    def spawn_with_progress(
        self,
        user: str,
        options: Mapping[str, Any] | None = None,
        *,
        server_name: str = "",
        timeout: float = 180.0,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Spawn while reading the hub's progress stream; returns (server model, events).

        Raises
        ------
        SpawnFailed
            If the hub refuses the request or the spawn fails.
        """
        result: dict[str, Any] = {}

        def post() -> None:
            try:
                result["response"] = self.request_spawn(user, options, server_name=server_name)
            except requests.RequestException as exc:
                result["error"] = exc

        poster = threading.Thread(target=post, daemon=True)
        poster.start()
        events: list[dict[str, Any]] = []
        path = self._server_path(user, server_name) + "/progress"
        for _ in poll(timeout, 0.05):
            with self.api("GET", path, stream=True, timeout=timeout) as r:
                if r.status_code == 200:
                    for line in r.iter_lines(decode_unicode=True):
                        if line and line.startswith("data:"):
                            event = json.loads(line[5:])
                            events.append(event)
                            if event.get("ready") or event.get("failed"):
                                break
                    break
            if "error" in result or (
                "response" in result and result["response"].status_code not in (201, 202)
            ):
                break
        poster.join(timeout)
        if "error" in result:
            raise HubError(f"spawn request failed: {result['error']}")
        response = result["response"]
        if response.status_code not in (201, 202):
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise SpawnFailed(response.status_code, message)
        return self.wait_ready(user, server_name, timeout=timeout), events

    def wait_ready(
        self, user: str, server_name: str = "", *, timeout: float = 180.0
    ) -> dict[str, Any]:
        """Wait until the server is ready; raise :class:`SpawnFailed` if it fails."""
        for _ in poll(timeout, 0.1):
            model = self.server(user, server_name)
            if model is None:
                raise SpawnFailed(500, self._failure_message(user, server_name))
            if model.get("ready"):
                return model
        raise HubError(f"server {user}/{server_name} not ready within {timeout} s")

    def stop_server(self, user: str, server_name: str = "", *, timeout: float = 60.0) -> None:
        """Stop a server and wait until the hub reports it gone."""
        r = self.api("DELETE", self._server_path(user, server_name))
        if r.status_code not in (202, 204, 400, 404):
            raise HubError(f"stopping {user}/{server_name}: {r.status_code} {r.text}")
        for _ in poll(timeout, 0.1):
            if self.server(user, server_name) is None:
                return
        raise HubError(f"server {user}/{server_name} did not stop within {timeout} s")

    # --- inspecting servers -----------------------------------------------------------
    def wait_warm_start(self, timeout: float = 120.0) -> None:
        """Wait until the hub's warm-start templates have their modules imported."""
        logs = [self.run_dir / "warm-start" / f"{role}.log" for role in ("notebook", "cluster")]
        wait_until(
            lambda: all(log.exists() and ": ready" in log.read_text() for log in logs),
            timeout,
            "the hub's warm-start templates ready",
        )

    def spawner_state(self, user: str, server_name: str = "") -> dict[str, Any]:
        """AstroKit's part of the spawner state (server id, pids, addresses)."""
        model = self.server(user, server_name)
        if model is None:
            raise HubError(f"server {user}/{server_name} is not running")
        return (model.get("state") or {}).get("astrokit") or {}

    def server_env(self, user: str, server_name: str = "") -> dict[str, str]:
        """The environment the notebook server process was started with."""
        pid = self.spawner_state(user, server_name)["notebook"]["pid"]
        return psutil.Process(pid).environ()

    def leftover_processes(self, server_id: str | None = None) -> list[psutil.Process]:
        """Processes started for this hub's servers (or one server) that are still alive."""
        found = []
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
                if server_id is not None:
                    match = env.get("ASTROKIT_SERVER_ID") == server_id
                else:
                    match = (
                        "ASTROKIT_SERVER_ID" in env
                        and env.get("ASTROKIT_STORE_URL") == self.store_url
                    )
                if match and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue
        return found
