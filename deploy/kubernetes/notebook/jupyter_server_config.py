"""Jupyter Server configuration baked into the AstroKit notebook image.

The Dask dashboard of a user's cluster is served by its scheduler Service
(``<cluster>-scheduler.<namespace>.svc:8787``) and reached through the hub as
``/user/<name>/proxy/<host>:8787/status``: jupyter-server-proxy forwards to remote hosts
only when they are allowed here. Only scheduler Services (and the local host, for a
LocalCluster) are allowed, so the proxy cannot be used to reach anything else in the cluster.
"""

import re

_SCHEDULER_HOST = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?-scheduler\.[a-z0-9-]+\.svc(\.cluster\.local)?$"
)


def _allowed_host(handler, host):
    return host in ("localhost", "127.0.0.1") or bool(_SCHEDULER_HOST.fullmatch(host))


c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file
c.ServerProxy.host_allowlist = _allowed_host
