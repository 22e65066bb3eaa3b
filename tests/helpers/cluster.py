"""A real Dask cluster for tests, and a worker killed in the middle of a run.

:func:`local_client` is the suite's one recipe for a ``LocalCluster``: worker processes of one
thread each on 127.0.0.1, dashboards on free ports (never the default 8787, which another test
or a running hub may hold). :func:`kill_a_worker_mid_run` is the fault the inference tests
inject: SIGKILL, as the OOM killer or a lost node would, while tasks are in hand.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers.polling import wait_until

__all__ = ["kill_a_worker_mid_run", "local_client"]


@contextmanager
def local_client(n_workers: int = 2, **options: Any) -> Iterator[Any]:
    """A ``Client`` of a new ``LocalCluster`` of ``n_workers`` processes x 1 thread.

    ``options`` go to ``LocalCluster`` over the defaults above. Both are closed on exit.
    """
    from distributed import Client, LocalCluster

    settings: dict[str, Any] = {
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
        "worker_dashboard_address": "127.0.0.1:0",
    }
    settings.update(options)
    with LocalCluster(n_workers=n_workers, **settings) as cluster, Client(cluster) as client:
        yield client


def kill_a_worker_mid_run(
    client: Any, run: Callable[[], Any], out: Path, *, written: int = 2, timeout: float = 120
) -> tuple[Any, int]:
    """Call ``run()`` in a thread and SIGKILL a worker while it runs; return what it returned.

    The worker killed is one with tasks in hand once ``written`` partitions
    (``out/pred-*.parquet``) exist. Fails if the run ends first, raises, does not finish
    within 300 s of the kill, or if the worker survived. Returns ``(result, partitions
    written before the kill)``.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = run()
        except BaseException as exc:  # surfaced by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    before: list[int] = []

    def running_worker() -> str | None:
        """A worker with tasks in hand once ``written`` partitions exist (None before)."""
        if not thread.is_alive():
            raise AssertionError(f"the run ended before a worker was killed: {outcome}")
        done = len(list(out.glob("pred-*.parquet"))) if out.exists() else 0
        busy = [addr for addr, keys in client.processing().items() if keys]
        if done >= written and busy:
            before.append(done)
            return busy[0]
        return None

    victim = wait_until(running_worker, timeout, "a run with partitions written and tasks", 0.02)
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, 9)  # SIGKILL: no cleanup, as when the OOM killer or a lost node takes it
    thread.join(timeout=300)
    assert not thread.is_alive(), "the run did not finish after the worker was killed"
    assert "error" not in outcome, outcome.get("error")
    assert victim not in client.scheduler_info()["workers"]  # the worker really died
    return outcome["result"], before[0]
