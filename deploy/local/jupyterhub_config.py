# ruff: noqa: F821  (`get_config` is provided by JupyterHub when it loads this file)
"""AstroKit's embedded default: one machine, local processes, a file:// store.

Started by ``make run`` as ``jupyterhub -f deploy/local/jupyterhub_config.py`` with
``ASTROKIT_RUN_DIR`` set (everything mutable lives there: database, cookie secret, password,
per-server state, homes and the store) and configurable-http-proxy on PATH.

Settings read from the environment (all optional; defaults in brackets):

- ASTROKIT_RUN_DIR: state directory [./.run]
- ASTROKIT_HUB_IP, ASTROKIT_HUB_PORT: where the hub listens [127.0.0.1, 8000]
- ASTROKIT_SHARED_PASSWORD: password for every non-admin user [generated]
- ASTROKIT_ADMIN_USER: the administrator's user name [admin]
- ASTROKIT_STORE_URL: object store root [<run>/store]
- ASTROKIT_MODEL_URL: default photo-z checkpoint [<store>/shared/models/photoz-small.pt]
- ASTROKIT_CULL_TIMEOUT: seconds before an idle server is stopped [3600]
- ASTROKIT_CULL_EVERY: seconds between idle checks [300]
- ASTROKIT_CLUSTER_IDLE_TIMEOUT: seconds before idle Dask workers are released [600]
- ASTROKIT_CLUSTER_IDLE_MINIMUM: workers kept while idle [0]

The generated passwords are stored (mode 0600) under the run dir and printed at start.
"""

import os
import secrets
import sys
from pathlib import Path

c = get_config()

run_dir = Path(os.environ.get("ASTROKIT_RUN_DIR", ".run")).resolve()
run_dir.mkdir(parents=True, exist_ok=True)
os.environ["ASTROKIT_RUN_DIR"] = str(run_dir)  # the spawner's default reads it


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

# --- authentication: one shared password (swap in OAuthenticator for an institution) -------
admin_user = os.environ.get("ASTROKIT_ADMIN_USER", "admin")
user_password = os.environ.get("ASTROKIT_SHARED_PASSWORD") or _secret_file("shared-password", 12)
admin_password = _secret_file("admin-password", 32)
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = user_password
c.SharedPasswordAuthenticator.admin_password = admin_password
c.Authenticator.admin_users = {admin_user}
c.Authenticator.allow_all = True

# --- spawner: a notebook plus its own TLS Dask cluster per server -------------------------
c.JupyterHub.spawner_class = "astrokit"
c.AstroKitSpawner.run_dir = str(run_dir)
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
c.Spawner.args = ["--LabApp.extension_manager=readonly"]
c.Spawner.start_timeout = 120
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

# --- banner (a config file may print; it is read once at hub start) ---------------------
_url = f"http://{hub_ip}:{hub_port}/"
_banner = f"""
================================ AstroKit ================================
 Hub:        {_url}
 Log in:     any user name, password: {user_password}
 Admin:      user '{admin_user}', password in {run_dir / "admin-password"}
 Store:      {c.AstroKitSpawner.store_url}
 Idle:       servers stopped after {cull_timeout} s idle; Dask workers released
             after {c.AstroKitSpawner.cluster_idle_timeout:g} s idle
 State:      {run_dir}
==========================================================================
"""
print(_banner, file=sys.stderr, flush=True)
