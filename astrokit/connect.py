"""Connect a notebook to the Dask cluster that the hub started for this server.

The spawner (``astrokit_spawner``) sets the scheduler address, the TLS credentials made for
this server alone and the number of workers in the environment (names in
:mod:`astrokit.env`). :func:`connect` reads them, so notebook code needs no arguments::

    import astrokit
    client = astrokit.connect()

A bare ``distributed.Client()`` works as well (the spawner sets Dask's own variables too);
the scheduler address and TLS files are read from Dask's configuration (:mod:`dask.config`:
``scheduler-address``, ``distributed.comm.tls.*``), whichever way it was set (the spawner's
``DASK_*`` variables, a YAML file, ``dask.config.set``), not by re-parsing variables;
:func:`connect` adds clear errors, waits for the profile's workers and wakes a cluster that
released its workers while idle; :func:`scale_cluster` scales it within the profile's size.

This module imports only ``distributed`` and the standard library, so it works in the hub's
environment as well as in notebooks and on workers.
"""

from __future__ import annotations

import logging
import operator
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from astrokit import env as envnames
from astrokit.errors import UserError

if TYPE_CHECKING:
    import distributed

__all__ = [
    "ConnectError",
    "configured_address",
    "connect",
    "dashboard_link",
    "scale_cluster",
    "security_from_env",
]

logger = logging.getLogger(__name__)

#: Seconds connect() waits for the scheduler and then for the workers when ``timeout=None``.
DEFAULT_TIMEOUT = 60.0

#: Name of the scheduler plugin the spawner's cluster manager installs to scale back up.
WAKE_PLUGIN = "astrokit-wake"


class ConnectError(UserError, RuntimeError):
    """No usable Dask cluster: unconfigured, credentials missing, unreachable, too few workers."""


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


#: The Dask configuration keys of the TLS files, with the variable the spawner sets each by.
_TLS_KEYS = (
    ("distributed.comm.tls.ca-file", envnames.DASK_TLS_CA),
    ("distributed.comm.tls.client.cert", envnames.DASK_TLS_CLIENT_CERT),
    ("distributed.comm.tls.client.key", envnames.DASK_TLS_CLIENT_KEY),
)


def _dask_setting(key: str, environ: Mapping[str, str] | None) -> str | None:
    """``key`` from Dask's live configuration, or from ``environ``'s ``DASK_*`` variables."""
    import dask.config

    if environ is None:
        value = dask.config.get(key, None)
    else:  # Dask's own parsing of DASK_* variables (prefix, "__" nesting, values)
        value = dask.config.get(key, None, config=dask.config.collect_env(environ))
    return None if value in (None, "") else str(value)


def _describe_key(key: str, variable: str) -> str:
    return f"{key} ({variable})"


def configured_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The scheduler address the spawner configured, or ``None``.

    ``ASTROKIT_SCHEDULER_ADDRESS``, then Dask's own ``scheduler-address`` setting (which
    ``DASK_SCHEDULER_ADDRESS`` sets).
    """
    ours = _environ(environ).get(envnames.SCHEDULER_ADDRESS)
    return ours or _dask_setting("scheduler-address", environ)


def security_from_env(environ: Mapping[str, str] | None = None) -> distributed.Security | None:
    """Build the TLS :class:`distributed.Security` from Dask's configuration.

    The files are Dask's settings ``distributed.comm.tls.ca-file``, ``...client.cert`` and
    ``...client.key`` (the spawner sets them through ``DASK_DISTRIBUTED__COMM__TLS__*``).

    Parameters
    ----------
    environ
        ``DASK_*`` variables to read instead of Dask's live configuration (which Dask filled
        from ``os.environ`` and its YAML files at import, and ``dask.config.set`` changes).

    Returns
    -------
    distributed.Security or None
        ``None`` when no TLS file is configured (a plain-TCP cluster).

    Raises
    ------
    ConnectError
        If the settings name files that do not exist, or only part of them is set.
    """
    from distributed import Security

    values = {(key, var): _dask_setting(key, environ) for key, var in _TLS_KEYS}
    if not any(values.values()):
        return None
    missing = [_describe_key(*name) for name, value in values.items() if not value]
    if missing:
        raise ConnectError(
            f"incomplete Dask TLS configuration: {', '.join(missing)} not set; all three of "
            "the CA file, client certificate and client key are needed"
        )
    for (key, var), value in values.items():
        if not Path(value).is_file():
            raise ConnectError(
                f"{_describe_key(key, var)} names {value!r}, which is not a readable file"
            )
    ca, cert, key = values.values()
    return Security(
        tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True
    )


def dashboard_link(environ: Mapping[str, str] | None = None) -> str | None:
    """The dashboard link that goes through the hub (``/user/<name>/proxy/<port>/status``).

    Returns ``None`` when the spawner did not set one.
    """
    return _environ(environ).get(envnames.DASHBOARD_URL) or None


def wake_on_scheduler(dask_scheduler) -> bool:
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
        Scheduler address; ``None`` reads ``ASTROKIT_SCHEDULER_ADDRESS``, then Dask's
        ``scheduler-address`` setting (see :func:`configured_address`).
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
    address = address or configured_address()
    if not address:
        raise ConnectError(
            f"no Dask cluster is configured: {envnames.SCHEDULER_ADDRESS} is not set (nor "
            "Dask's scheduler-address). Start your server from the hub, or pass "
            "address='tls://host:port'"
        )
    security = security_from_env()
    if address.startswith("tls://") and security is None:
        raise ConnectError(
            f"{address} needs TLS credentials, but Dask's {_describe_key(*_TLS_KEYS[0])} is not set"
        )
    seconds = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    try:
        client = Client(address, security=security, timeout=f"{seconds}s")
    except (OSError, TimeoutError) as exc:
        raise ConnectError(
            f"cannot reach the Dask scheduler at {address} within {seconds:g} s: {exc}"
        ) from exc

    wanted = profile_workers(env)
    if wait_for_workers and wanted:
        have = len(client.scheduler_info(n_workers=-1)["workers"])
        if have < wanted:
            try:
                woke = client.run_on_scheduler(wake_on_scheduler)
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


def scale_on_scheduler(dask_scheduler, n_workers: int) -> int | None:
    """Runs on the scheduler: ask the cluster manager for ``n_workers`` (None: no manager)."""
    plugin = dask_scheduler.plugins.get(WAKE_PLUGIN)
    if plugin is None:
        return None
    return plugin.scale(n_workers)


def scale_cluster(
    client: distributed.Client, n_workers: int, *, timeout: float | None = None
) -> int:
    """Scale this server's cluster to ``n_workers`` and wait until exactly that many are there.

    Between 0 and the profile's number of workers (``ASTROKIT_N_WORKERS``): the hub set that
    maximum, and the cluster manager refuses more. Idle workers are released on their own
    and :func:`connect` scales back to the maximum, so this is for releasing workers early
    or running smaller on purpose.

    Parameters
    ----------
    client
        A client of this server's cluster (from :func:`connect`).
    n_workers
        The number of workers wanted.
    timeout
        Seconds to wait for the workers to arrive or leave; ``None`` means
        :data:`DEFAULT_TIMEOUT`.

    Returns
    -------
    int
        The number of workers connected afterwards (``n_workers``).

    Raises
    ------
    ValueError
        If ``n_workers`` is outside ``0..ASTROKIT_N_WORKERS``.
    ConnectError
        When the cluster cannot be scaled from the notebook (it was not started by
        AstroKit's local backend: on Kubernetes the cluster keeps the profile's size), or
        the workers do not arrive or leave in time.
    """
    n_workers = operator.index(n_workers)
    maximum = profile_workers(os.environ)
    if n_workers < 0 or (maximum and n_workers > maximum):
        raise ValueError(
            f"n_workers={n_workers} is outside 0..{maximum} (your profile's workers); for a "
            "bigger cluster restart your server from the hub with a larger profile"
        )
    if client.run_on_scheduler(scale_on_scheduler, n_workers=n_workers) is None:
        raise ConnectError(
            f"the cluster at {client.scheduler.address} cannot be scaled from the notebook: "
            "it has the fixed size of your profile"
        )
    seconds = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    deadline = time.monotonic() + seconds
    while (have := len(client.scheduler_info(n_workers=-1)["workers"])) != n_workers:
        if time.monotonic() > deadline:
            raise ConnectError(
                f"{have} Dask workers connected instead of {n_workers} after {seconds:g} s"
            )
        time.sleep(0.1)
    return have


def profile_workers(env: Mapping[str, str]) -> int:
    raw = env.get(envnames.N_WORKERS, "")
    try:
        return max(0, int(raw))
    except ValueError:
        if raw:
            logger.warning("ignoring %s=%r: not a whole number", envnames.N_WORKERS, raw)
        return 0
