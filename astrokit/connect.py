"""Connect a notebook to the Dask cluster that the hub started for this server.

The spawner (``astrokit_spawner``) sets the scheduler address, the TLS credentials made for
this server alone and the number of workers in the environment (names in
:mod:`astrokit.env`). :func:`connect` reads them, so notebook code needs no arguments::

    import astrokit
    client = astrokit.connect()

A bare ``distributed.Client()`` works as well (the spawner sets Dask's own variables too);
:func:`connect` adds clear errors, waits for the profile's workers and wakes a cluster that
released its workers while idle.

This module imports only ``distributed`` and the standard library, so it works in the hub's
environment as well as in notebooks and on workers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from astrokit import env as envnames

if TYPE_CHECKING:
    import distributed

__all__ = ["ConnectError", "connect", "dashboard_link", "security_from_env"]

logger = logging.getLogger(__name__)

#: Seconds connect() waits for the scheduler and then for the workers when ``timeout=None``.
DEFAULT_TIMEOUT = 60.0

#: Name of the scheduler plugin the spawner's cluster manager installs to scale back up.
WAKE_PLUGIN = "astrokit-wake"


class ConnectError(RuntimeError):
    """No usable Dask cluster: unconfigured, credentials missing, unreachable, too few workers."""


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def security_from_env(environ: Mapping[str, str] | None = None) -> distributed.Security | None:
    """Build the TLS :class:`distributed.Security` from the spawner's environment.

    Parameters
    ----------
    environ
        Mapping to read instead of ``os.environ``.

    Returns
    -------
    distributed.Security or None
        ``None`` when no CA file is configured (a plain-TCP cluster).

    Raises
    ------
    ConnectError
        If the variables name files that do not exist, or only part of them is set.
    """
    from distributed import Security

    env = _environ(environ)
    names = (envnames.DASK_TLS_CA, envnames.DASK_TLS_CLIENT_CERT, envnames.DASK_TLS_CLIENT_KEY)
    values = {name: env.get(name, "") for name in names}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConnectError(f"incomplete Dask TLS configuration: {', '.join(missing)} not set")
    for name, value in values.items():
        if not Path(value).is_file():
            raise ConnectError(f"{name} names {value!r}, which is not a readable file")
    return Security(
        tls_ca_file=values[envnames.DASK_TLS_CA],
        tls_client_cert=values[envnames.DASK_TLS_CLIENT_CERT],
        tls_client_key=values[envnames.DASK_TLS_CLIENT_KEY],
        require_encryption=True,
    )


def dashboard_link(environ: Mapping[str, str] | None = None) -> str | None:
    """The dashboard link that goes through the hub (``/user/<name>/proxy/<port>/status``).

    Returns ``None`` when the spawner did not set one.
    """
    return _environ(environ).get(envnames.DASHBOARD_URL) or None


def _wake(dask_scheduler) -> bool:
    """Runs on the scheduler: ask the cluster manager to scale back to the profile's size."""
    plugin = dask_scheduler.plugins.get(WAKE_PLUGIN)
    if plugin is None:
        return False
    plugin.wake()
    return True


def connect(
    *,
    address: str | None = None,
    timeout: float | None = None,
    wait_for_workers: bool = True,
) -> distributed.Client:
    """Connect to this server's Dask cluster.

    Parameters
    ----------
    address
        Scheduler address; ``None`` reads ``ASTROKIT_SCHEDULER_ADDRESS`` (then
        ``DASK_SCHEDULER_ADDRESS``).
    timeout
        Seconds to wait for the scheduler and, separately, for the workers; ``None`` means
        :data:`DEFAULT_TIMEOUT`.
    wait_for_workers
        Wait until ``ASTROKIT_N_WORKERS`` workers are connected. If the cluster released
        its workers while idle, it is asked to start them again first.

    Returns
    -------
    distributed.Client

    Raises
    ------
    ConnectError
        When no cluster is configured, credentials are missing, the scheduler cannot be
        reached, or the workers do not arrive in time.
    """
    from distributed import Client

    env = os.environ
    address = (
        address or env.get(envnames.SCHEDULER_ADDRESS) or env.get(envnames.DASK_SCHEDULER_ADDRESS)
    )
    if not address:
        raise ConnectError(
            f"no Dask cluster is configured: {envnames.SCHEDULER_ADDRESS} is not set. Start "
            "your server from the hub, or pass address='tls://host:port'"
        )
    security = security_from_env()
    if address.startswith("tls://") and security is None:
        raise ConnectError(
            f"{address} needs TLS credentials, but {envnames.DASK_TLS_CA} is not set"
        )
    seconds = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    try:
        client = Client(address, security=security, timeout=f"{seconds}s")
    except (OSError, TimeoutError) as exc:
        raise ConnectError(
            f"cannot reach the Dask scheduler at {address} within {seconds:g} s: {exc}"
        ) from exc

    wanted = _n_workers(env)
    if wait_for_workers and wanted:
        have = len(client.scheduler_info(n_workers=-1)["workers"])
        if have < wanted:
            try:
                woke = client.run_on_scheduler(_wake)
            except Exception:  # an older scheduler without our plugin: just wait
                logger.debug("could not ask the scheduler to scale up", exc_info=True)
                woke = False
            logger.info(
                "%d of %d workers connected%s; waiting",
                have,
                wanted,
                " (cluster asked to scale up)" if woke else "",
            )
        start = time.monotonic()
        try:
            client.wait_for_workers(wanted, timeout=seconds)
        except TimeoutError as exc:
            have = len(client.scheduler_info(n_workers=-1)["workers"])
            client.close()
            raise ConnectError(
                f"only {have} of {wanted} Dask workers connected to {address} within {seconds:g} s"
            ) from exc
        logger.debug("workers ready after %.2f s", time.monotonic() - start)
    return client


def _n_workers(env: Mapping[str, str]) -> int:
    raw = env.get(envnames.N_WORKERS, "")
    try:
        return max(0, int(raw))
    except ValueError:
        if raw:
            logger.warning("ignoring %s=%r: not a whole number", envnames.N_WORKERS, raw)
        return 0
