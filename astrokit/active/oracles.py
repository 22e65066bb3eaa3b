"""Oracles: who answers the loop's queries.

Three kinds, one protocol:

:class:`KnownLabelsOracle`
    Simulation: answers from labels already in the pool (or a mapping), a whole batch at once.
:class:`CallableOracle`
    Any Python function ``fn(query) -> label | None`` (None = skip), one query at a time —
    another model, a catalogue cross-match, a rule.
:class:`HumanOracle`
    A person, through :class:`astrokit_widgets.labeller.LabellingWidget`. A notebook cannot
    block waiting for clicks, so this oracle is *asynchronous*: the loop's ``step()`` stops at
    "awaiting labels", the widget records each click with ``loop.record_label`` (written to the
    store at once), and calls ``step()`` again when the batch is done.

A synchronous oracle implements ``label(query)`` and optionally ``label_batch(queries)``; the
loop persists every label as soon as the oracle returns it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from astrokit.active.pool import Pool
from astrokit.errors import UserError

__all__ = [
    "CallableOracle",
    "HumanOracle",
    "KnownLabelsOracle",
    "Oracle",
    "OracleError",
    "Query",
    "as_oracle",
]

log = logging.getLogger(__name__)


class OracleError(UserError, RuntimeError):
    """An oracle cannot answer (unknown label, label not among the classes...)."""


@dataclass(frozen=True)
class Query:
    """One spectrum the loop wants labelled.

    Attributes
    ----------
    index : int
        Row in the pool.
    id : str
        The spectrum's id.
    iteration : int
        The iteration that asked.
    score : float
        The strategy's informativeness score (NaN for random picks).
    flux : ndarray or None
        The preprocessed spectrum on the pool's grid (filled in by the loop).
    """

    index: int
    id: str
    iteration: int
    score: float = float("nan")
    flux: np.ndarray | None = field(default=None, compare=False, repr=False)


@runtime_checkable
class Oracle(Protocol):
    """Answers queries: ``label(query)`` returns a class name, or None to skip."""

    asynchronous: bool

    def label(self, query: Query) -> str | None: ...


class KnownLabelsOracle:
    """Answers from known labels: the pool's own ``labels`` arrays, or a mapping by id.

    Parameters
    ----------
    labels : mapping of id -> class name, optional
        Known labels; default: read from the pool's shards (simulation pools).
    pool : Pool, optional
        The pool to read labels from (the loop binds its own pool when this is None).
    """

    asynchronous = False

    def __init__(self, labels: Mapping[str, str] | None = None, pool: Pool | None = None) -> None:
        self.labels = dict(labels) if labels is not None else None
        self.pool = pool

    def bind(self, pool: Pool) -> None:
        """Use ``pool`` for labels when no mapping was given."""
        if self.pool is None:
            self.pool = pool

    def label_batch(self, queries: Sequence[Query]) -> list[str | None]:
        """Labels for all ``queries`` (reads only the shards they live in)."""
        if self.labels is not None:
            missing = [q.id for q in queries if q.id not in self.labels]
            if missing:
                raise OracleError(f"no known label for {len(missing)} spectra, e.g. {missing[:3]}")
            return [self.labels[q.id] for q in queries]
        if self.pool is None:
            raise OracleError("KnownLabelsOracle has neither a label mapping nor a pool")
        if not self.pool.has_labels:
            raise OracleError(f"pool {self.pool.url} has no known labels (built without them)")
        rows = self.pool.get_rows([q.index for q in queries], keys=("labels", "ids"))
        out: list[str | None] = []
        for q, label, sid in zip(queries, rows["labels"], rows["ids"], strict=True):
            if str(sid) != q.id:
                raise OracleError(f"pool row {q.index} is {sid!r}, query says {q.id!r}")
            if not str(label):
                raise OracleError(f"pool row {q.index} ({q.id}) has no known label")
            out.append(str(label))
        return out

    def label(self, query: Query) -> str | None:
        """The known label of one query."""
        return self.label_batch([query])[0]


class CallableOracle:
    """Wraps ``fn(query) -> class name | None`` (None skips the spectrum)."""

    asynchronous = False

    def __init__(self, fn: Callable[[Query], str | None]) -> None:
        if not callable(fn):
            raise TypeError(f"CallableOracle needs a callable, got {type(fn).__name__}")
        self.fn = fn

    def label(self, query: Query) -> str | None:
        return self.fn(query)


class HumanOracle:
    """A person labelling through the widget: the loop pauses at "awaiting labels"."""

    asynchronous = True

    def label(self, query: Query) -> str | None:  # pragma: no cover - never called
        raise OracleError("a human oracle answers through loop.record_label, not label()")


def as_oracle(oracle: Any) -> Any:
    """Normalise what the user passed: None/"human", "known", a mapping, a callable, an Oracle."""
    if oracle is None or oracle == "human":
        return HumanOracle()
    if oracle == "known":
        return KnownLabelsOracle()
    if isinstance(oracle, Mapping):
        return KnownLabelsOracle(oracle)
    if hasattr(oracle, "asynchronous") and (
        hasattr(oracle, "label") or hasattr(oracle, "label_batch")
    ):
        return oracle
    if callable(oracle):
        return CallableOracle(oracle)
    raise OracleError(
        f"cannot use {type(oracle).__name__} as an oracle: pass 'known', 'human', a mapping "
        "of id -> label, a callable query -> label, or an Oracle"
    )
