"""Where an active-learning loop keeps its state in the store, so that it survives anything.

Layout under the loop's state URL::

    loop.json              configuration, phase, pending query, history, RNG state
    labels/it-00003.json   every label given during iteration 3, in order (skips included)
    models/it-00003.pt     model state after iteration 3's retraining

Labels are the precious part — a human's time — so they are written separately from the
rest and *first*: each label (or each batch from an instantaneous oracle) rewrites the current
iteration's label file atomically before the call that recorded it returns. A crash can lose
at most the label being typed. Label files stay small (one batch each), so a rewrite costs the
same at label 10 as at label 10,000, and S3 (no appends) works the same as a local disk.

``loop.json`` is rewritten at each phase change. On resume, label files win over ``loop.json``:
any label given after the last state write is still found and counted.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from astrokit.errors import CheckpointError
from astrokit.store import Store, StoreNotFound, resolve

__all__ = ["CheckpointError", "LoopCheckpoint"]

log = logging.getLogger(__name__)

STATE_FORMAT = "astrokit-al-loop"
STATE_VERSION = 1


class LoopCheckpoint:
    """Reads and writes one loop's state under ``url`` (see the module docstring).

    Parameters
    ----------
    url : str
        The loop's state directory (must be writable: under the user's prefix).
    store : Store, optional
        Default: resolved from the URL / environment.
    """

    def __init__(self, url: str, store: Store | None = None) -> None:
        self.store, url = resolve(url, store)
        self.url = url.rstrip("/")

    def __repr__(self) -> str:
        return f"LoopCheckpoint({self.url!r})"

    # -- paths -----------------------------------------------------------------------------
    @property
    def state_url(self) -> str:
        return f"{self.url}/loop.json"

    def labels_url(self, iteration: int) -> str:
        return f"{self.url}/labels/it-{iteration:05d}.json"

    def model_url(self, iteration: int) -> str:
        return f"{self.url}/models/it-{iteration:05d}.pt"

    # -- loop state ------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether a loop has been started here."""
        return self.store.exists(self.state_url)

    def load_state(self) -> dict[str, Any] | None:
        """The stored ``loop.json`` document, or None when there is none."""
        try:
            raw = self.store.read_bytes(self.state_url)
        except StoreNotFound:
            return None
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{self.state_url}: not JSON ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise CheckpointError(
                f"{self.state_url}: not an active-learning loop state "
                f"(format {doc.get('format') if isinstance(doc, dict) else None!r}, "
                f"expected {STATE_FORMAT!r})"
            )
        if int(doc.get("version", 0)) > STATE_VERSION:
            raise CheckpointError(
                f"{self.state_url}: state version {doc['version']} is newer than {STATE_VERSION}"
            )
        return doc

    def save_state(self, state: dict[str, Any]) -> None:
        """Write ``loop.json`` atomically."""
        doc = {**state, "format": STATE_FORMAT, "version": STATE_VERSION, "saved": time.time()}
        self.store.write_bytes(self.state_url, json.dumps(doc, indent=1).encode())

    # -- labels ----------------------------------------------------------------------------
    def save_labels(self, iteration: int, records: list[dict[str, Any]]) -> None:
        """Rewrite iteration ``iteration``'s label file atomically with ``records``."""
        doc = {"iteration": iteration, "records": records}
        self.store.write_bytes(self.labels_url(iteration), json.dumps(doc).encode())

    def load_labels(self, iteration: int) -> list[dict[str, Any]]:
        """The label records of one iteration (empty when none were given)."""
        url = self.labels_url(iteration)
        try:
            doc = json.loads(self.store.read_bytes(url))
        except StoreNotFound:
            return []
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{url}: not JSON ({exc})") from exc
        records = doc.get("records") if isinstance(doc, dict) else None
        if not isinstance(records, list):
            raise CheckpointError(f"{url}: expected {{'records': [...]}}")
        return records

    # -- model -----------------------------------------------------------------------------
    def save_model(self, iteration: int, state: bytes) -> None:
        """Store the model state after ``iteration`` (atomic)."""
        self.store.write_bytes(self.model_url(iteration), state)

    def load_model(self, iteration: int) -> bytes:
        """The model state saved after ``iteration``."""
        try:
            return self.store.read_bytes(self.model_url(iteration))
        except StoreNotFound as exc:
            raise CheckpointError(
                f"{self.model_url(iteration)}: model checkpoint missing; the loop state says "
                f"iteration {iteration} finished"
            ) from exc
