# ruff: noqa: F821  (`get_config` is provided by JupyterHub when it loads this file)
"""AstroKit's embedded default: one machine, local processes, a file:// store.

Started by ``make run`` as ``jupyterhub -f deploy/local/jupyterhub_config.py`` with
``ASTROKIT_RUN_DIR`` set (everything mutable lives there: database, cookie secret, password,
per-server state, homes and the store) and configurable-http-proxy on PATH.

Settings read from the environment (all optional; defaults in brackets):

- ASTROKIT_RUN_DIR: state directory [./.run]
- ASTROKIT_HUB_IP, ASTROKIT_HUB_PORT: where the hub listens [127.0.0.1, 8000]
- ASTROKIT_ADMIN_USER: the administrator's user name [admin]
- ASTROKIT_STORE_URL: object store root [<run>/store]
- ASTROKIT_MODEL_URL: default photo-z checkpoint [<store>/shared/models/photoz-small.pt]
- ASTROKIT_CULL_TIMEOUT: seconds before an idle server is stopped [3600]
- ASTROKIT_CULL_EVERY: seconds between idle checks [300]
- ASTROKIT_CLUSTER_IDLE_TIMEOUT: seconds before idle Dask workers are released [600]
- ASTROKIT_CLUSTER_IDLE_MINIMUM: workers kept while idle [0]
- ASTROKIT_WARM_START: 0 to start every server process afresh instead of forking the
  notebook and cluster manager from the hub's preloaded templates [1]

Users have passwords of their own (NativeAuthenticator, bcrypt hashes in the hub's database):
they sign up at /hub/signup and the admin authorizes them at /hub/authorize. The admin's
first password is generated into <run dir>/admin-password (mode 0600) and its path printed at
start. When the hub runs as root, each user's server runs as the system account
astrokit-<name> with cgroup limits (see the README's "Security model").
"""

import asyncio
import os
import secrets
import sys
from pathlib import Path

from astrokit_spawner.spawner import warm_starts

c = get_config()

run_dir = Path(os.environ.get("ASTROKIT_RUN_DIR", ".run")).resolve()
run_dir.mkdir(parents=True, exist_ok=True)
os.environ["ASTROKIT_RUN_DIR"] = str(run_dir)  # the spawner's default reads it
# Files the hub makes (database, cookie secret, proxy pid) are its own alone, and so are the
# files servers make unless they say otherwise. The run dir can be traversed (homes, servers
# and the store live below it) but not listed.
os.umask(0o077)
run_dir.chmod(0o711)
for _name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "admin-password"):
    if (run_dir / _name).exists():
        (run_dir / _name).chmod(0o600)


def _secret_file(name: str, length: int) -> str:
    """Read a generated secret from the run dir, creating it (0600) on first start."""
    path = run_dir / name
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(length)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


# --- network: loopback only; put a TLS-terminating proxy in front for real use -------------
hub_ip = os.environ.get("ASTROKIT_HUB_IP", "127.0.0.1")
hub_port = int(os.environ.get("ASTROKIT_HUB_PORT", "8000"))
c.JupyterHub.ip = hub_ip
c.JupyterHub.port = hub_port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{run_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(run_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(run_dir / "jupyterhub-proxy.pid")

# --- authentication: a password per user (swap in OAuthenticator for an institution) -------
admin_user = os.environ.get("ASTROKIT_ADMIN_USER", "admin")
_secret_file("admin-password", 18)
c.JupyterHub.authenticator_class = "astrokit_spawner.auth.AstroKitAuthenticator"
c.AstroKitAuthenticator.password_files = {admin_user: str(run_dir / "admin-password")}
c.Authenticator.admin_users = {admin_user}
# Hub names become system accounts (astrokit-<name>): letters, digits, '-', '_'.
c.Authenticator.username_pattern = r"^[a-z][a-z0-9_-]{0,22}$"
c.Authenticator.allow_all = True  # who may log in is decided by the admin's authorization
c.NativeAuthenticator.minimum_password_length = 8
c.NativeAuthenticator.check_common_password = True
c.NativeAuthenticator.allowed_failed_logins = 5
c.NativeAuthenticator.seconds_before_next_try = 60

# --- spawner: a notebook plus its own TLS Dask cluster per server -------------------------
c.JupyterHub.spawner_class = "astrokit"
c.AstroKitSpawner.run_dir = str(run_dir)
# The templates that servers' notebooks and cluster managers are forked from start with the
# hub, so that the first users' starts find them ready (astrokit_spawner.warm_start).
c.AstroKitSpawner.warm_start = os.environ.get("ASTROKIT_WARM_START", "1") != "0"
if c.AstroKitSpawner.warm_start:
    warm_starts(sys.executable, str(run_dir)).start()
store_url = os.environ.get("ASTROKIT_STORE_URL") or (run_dir / "store").as_uri()
c.AstroKitSpawner.store_url = store_url
# `astrokit platform prepare` trains the demo photo-z model into the shared area.
c.AstroKitSpawner.model_url = (
    os.environ.get("ASTROKIT_MODEL_URL") or f"{store_url.rstrip('/')}/shared/models/photoz-small.pt"
)
c.AstroKitSpawner.cluster_idle_timeout = float(
    os.environ.get("ASTROKIT_CLUSTER_IDLE_TIMEOUT", "600")
)
c.AstroKitSpawner.cluster_idle_minimum = int(os.environ.get("ASTROKIT_CLUSTER_IDLE_MINIMUM", "0"))
# Everyone shares this machine's Python environment: JupyterLab's extension manager is
# read-only (no pip installs from the UI), which also spares each server creating PyPI clients.
# No language servers are installed, and jupyter-lsp's search for them runs `npm prefix -g`
# (a Node start-up, ~0.5 CPU s) in every server at start: it is turned off.
c.Spawner.args = ["--LabApp.extension_manager=readonly", "--LanguageServerManager.autodetect=False"]
# start() includes the wait for a start slot (c.AstroKitSpawner.concurrent_starts): a workshop
# whose users all press Start at once queues them, and the last may wait minutes for the slot.
# Once a start has its slot, the spawner's own deadlines apply (cluster_start_timeout, and as
# long for the notebook to answer), so this outer limit only has to cover the queue.
c.Spawner.start_timeout = 900
c.Spawner.http_timeout = 60
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 3
# Servers (and their clusters) keep running across hub restarts; the spawner's state finds them.
c.JupyterHub.cleanup_servers = False

# --- idle culling: stop servers nobody used for ASTROKIT_CULL_TIMEOUT seconds --------------
cull_timeout = int(os.environ.get("ASTROKIT_CULL_TIMEOUT", "3600"))
cull_every = int(os.environ.get("ASTROKIT_CULL_EVERY", "300"))
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={cull_timeout}",
            f"--cull-every={cull_every}",
        ],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "description": "Stop servers that have been idle too long",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]

# --- banner: printed once the hub answers, after its start-up log, where it is easy to find --
_url = f"http://{hub_ip}:{hub_port}/"
_isolation = (
    "each user runs as system account astrokit-<name>, with cgroup limits"
    if os.geteuid() == 0
    else f"NOT root: every server runs as {os.environ.get('USER', 'this account')}; "
    "one hub user only (c.AstroKitSpawner.single_account)"
)
_banner = f"""
================================ AstroKit ================================
 Hub:        {_url}
 Admin:      log in as '{admin_user}' with the password in {run_dir / "admin-password"}
 Users:      sign up at {_url}hub/signup; the admin authorizes them at
             {_url}hub/authorize (and resets passwords at /hub/change-password/<name>)
 Isolation:  {_isolation}
 Store:      {c.AstroKitSpawner.store_url}
 Idle:       servers stopped after {cull_timeout} s idle; Dask workers released
             after {c.AstroKitSpawner.cluster_idle_timeout:g} s idle
 State:      {run_dir}
 Stop:       Ctrl-C stops the hub and its proxy; users' servers keep running (a
             restarted hub finds them again). `make stop` ends them all.
==========================================================================
"""


async def _banner_when_up() -> None:
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient()
    for _ in range(600):
        try:
            response = await client.fetch(f"{_url}hub/api/", raise_error=False, request_timeout=2)
            if response.code == 200:
                break
        except OSError:
            pass
        await asyncio.sleep(0.5)
    print(_banner, file=sys.stderr, flush=True)


try:  # the hub reads its config inside its running event loop
    _banner_task = asyncio.get_running_loop().create_task(_banner_when_up())
except RuntimeError:  # read elsewhere (a tool, a test): print at once
    print(_banner, file=sys.stderr, flush=True)
