"""Dask worker preload: move this worker into a memory-limited cgroup slot of its own.

The spawner makes one ``cluster/worker-<k>`` cgroup per worker of the profile, each limited
to the profile's worker memory, and lets the server's account write their ``cgroup.procs``
(:mod:`astrokit_spawner.cgroups`). Workers are started by Dask's nannies, which AstroKit
does not fork itself, so each worker places itself: Dask runs this module in every worker
process at start (``distributed.worker.preload``), and :func:`dask_setup` claims the first
free slot - an exclusive ``flock`` on the slot's lock file, held for the worker's lifetime
and released by the kernel when it exits - and writes its pid into the slot.

The slots come from ``ASTROKIT_WORKER_CGROUPS``, a JSON object
``{"locks": dir, "slots": [[procs file, ...], ...]}`` set by the spawner. Without it (any
cluster not started by the local backend) this does nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["ENV", "claim_slot", "dask_setup"]

logger = logging.getLogger(__name__)

#: Environment variable carrying the slots.
ENV = "ASTROKIT_WORKER_CGROUPS"

# The claimed slot's lock, kept open (and so held) for the life of the process.
_held: Any = None


def claim_slot(config: dict[str, Any], pid: int | None = None) -> int | None:
    """Move ``pid`` (default: this process) into the first free slot; return its index.

    ``None`` when every slot is taken (e.g. a replacement worker starting while the one it
    replaces is still exiting): the worker then stays in the cluster's group, which still
    bounds the cluster as a whole.
    """
    global _held
    locks = Path(config["locks"])
    for index, procs_files in enumerate(config["slots"]):
        handle = open(locks / f"worker-{index}.lock", "a+")  # noqa: SIM115 (held for life)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        for procs in procs_files:
            with open(procs, "w") as target:
                target.write(str(pid or os.getpid()))
        _held = handle
        return index
    return None


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: claim a slot for this worker process."""
    raw = os.environ.get(ENV)
    if not raw:
        return
    try:
        index = claim_slot(json.loads(raw))
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("worker %s stays in the cluster's cgroup: %s", worker.name, exc)
        return
    if index is None:
        logger.warning("no free worker cgroup slot for %s; it shares the cluster's", worker.name)
    else:
        logger.info("worker %s runs in cgroup slot %d", worker.name, index)
