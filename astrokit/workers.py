"""What travels to Dask workers, and how a worker is set up: one policy for every task.

Two things every distributed part of AstroKit (ingest, photo-z inference, catalogue inference,
active-learning pool scoring) needs on its workers, defined once here:

* **the store** -- a task never carries an open :class:`~astrokit.store.Store` (an s3fs
  filesystem pickles with the ``key``/``secret`` it was given). :func:`task_store` turns the
  caller's store into a :class:`StoreSpec` (URL, endpoint, areas: no credentials) and the
  worker re-opens it with :func:`open_task_store`, taking credentials from its own
  environment, as the spawner's workers have them;
* **torch threads** -- :class:`TorchThreads`, a ``distributed.WorkerPlugin`` registered by
  :func:`setup_workers`, sizes torch's intra-op pool to the worker's ``nthreads`` once per
  worker process (not the machine's core count, not once per task). In-process code that
  needs another count for a while (training loops) uses :func:`torch_threads`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from astrokit.store import Store, open_store

log = logging.getLogger(__name__)

__all__ = [
    "StoreSpec",
    "TorchThreads",
    "open_task_store",
    "setup_workers",
    "task_store",
    "torch_threads",
]


@dataclass(frozen=True)
class StoreSpec:
    """How a worker re-opens the store: URL and endpoint only (credentials from its env).

    The shared area and whether it may be written travel too: a worker that writes (ingest's
    shards, inference's predictions) must refuse (or, for the platform's seeding, allow)
    exactly what the caller's store does, whatever ``ASTROKIT_SHARED_URL`` says in the
    worker's environment.
    """

    url: str
    endpoint: str | None = None
    anon: bool = False
    shared_url: str | None = None
    allow_shared_writes: bool = False
    user_url: str | None = None

    @classmethod
    def of(cls, store: Store) -> StoreSpec:
        """The spec of an open store (secrets are deliberately left out)."""
        anon = bool(getattr(store.fs, "anon", False))
        return cls(
            store.url,
            store.endpoint,
            anon,
            shared_url=store.shared_url,
            allow_shared_writes=store.allow_shared_writes,
            user_url=store.user_url,
        )

    def open(self) -> Store:
        """Open the store (on a worker)."""
        opts: dict[str, Any] = {}
        if self.endpoint:
            opts["client_kwargs"] = {"endpoint_url": self.endpoint}
        if self.anon:
            opts["anon"] = True
        return open_store(
            self.url,
            storage_options=opts or None,
            shared_url=self.shared_url,
            user_url=self.user_url,
            allow_shared_writes=self.allow_shared_writes,
        )


def task_store(store: Store | StoreSpec | None) -> StoreSpec | None:
    """What a task gets for ``store``: its :class:`StoreSpec`, or None (resolve from URLs).

    The one function through which every task's store goes into a task graph.
    """
    if store is None or isinstance(store, StoreSpec):
        return store
    if isinstance(store, Store):
        return StoreSpec.of(store)
    raise TypeError(f"expected a Store, StoreSpec or None, got {type(store).__name__}")


def open_task_store(spec: Store | StoreSpec | None) -> Store | None:
    """The store a task works with (None: resolve each URL from the worker's environment).

    Cheap to call once per task: :func:`astrokit.store.open_store` reuses the process's S3
    filesystem while the environment's credentials stay the same.
    """
    if spec is None or isinstance(spec, Store):
        return spec
    return spec.open()


# -- torch threads ---------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads, restoring the previous count after.

    ``None`` leaves torch alone.

    Raises
    ------
    ValueError
        ``threads`` < 1.
    """
    if threads is None:
        yield
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def worker_threads() -> int | None:
    """The current Dask worker's ``nthreads`` (None outside a worker)."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None


try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a core dependency
    _WorkerPlugin = object  # type: ignore[assignment,misc]


class TorchThreads(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """Worker plugin: torch's intra-op threads = the worker's ``nthreads``, set at setup.

    A worker runs ``nthreads`` tasks at once; each task's torch ops should use the worker's
    share of the cores, not all of the machine's (which oversubscribes a shared node).
    """

    name = "astrokit-torch-threads"
    idempotent = True

    def setup(self, worker: Any) -> None:
        import torch

        threads = max(1, int(worker.state.nthreads))
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        log.debug("torch threads = %d on %s", threads, worker.address)


def setup_workers(client: Any) -> None:
    """Register :class:`TorchThreads` on ``client``'s cluster (workers that join later too).

    Registering again is cheap and harmless (the plugin is idempotent by name).
    """
    try:
        client.register_plugin(TorchThreads(), name=TorchThreads.name, idempotent=True)
    except TypeError:  # older distributed without the idempotent keyword
        client.register_plugin(TorchThreads(), name=TorchThreads.name)
