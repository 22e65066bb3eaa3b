"""Active learning on spectra: a loop that asks an oracle (known labels, code or a person)
for the most informative labels, scoring the pool on the user's Dask cluster.

Quickstart::

    from astrokit.active import ActiveLearningLoop, build_pool_from_line_spectra

    pool = build_pool_from_line_spectra("file:///tmp/al/pool", 20_000, seed=1)
    loop = ActiveLearningLoop(pool, "file:///tmp/al/run", strategy="entropy", oracle="known")
    history = loop.run(iterations=10)    # resumes from the store if interrupted

See :mod:`astrokit.active.loop` for the iteration and checkpoint flow, and
:mod:`astrokit.active.experiment` for strategy-vs-random learning curves.
"""

from __future__ import annotations

from astrokit.active.checkpoint import CheckpointError, LoopCheckpoint
from astrokit.active.loop import ActiveLearningLoop, IterationRecord, LoopConfigError, StepResult
from astrokit.active.oracles import (
    CallableOracle,
    HumanOracle,
    KnownLabelsOracle,
    OracleError,
    Query,
)
from astrokit.active.pool import (
    LogGrid,
    Pool,
    PoolError,
    build_pool,
    build_pool_from_spectra,
    build_pool_from_synthetic,
    preprocess,
)
from astrokit.active.strategies import STRATEGIES, UnknownStrategyError, get_strategy
from astrokit.active.synthetic import build_pool_from_line_spectra, line_spectra

__all__ = [
    "STRATEGIES",
    "ActiveLearningLoop",
    "CallableOracle",
    "CheckpointError",
    "HumanOracle",
    "IterationRecord",
    "KnownLabelsOracle",
    "LogGrid",
    "LoopCheckpoint",
    "LoopConfigError",
    "OracleError",
    "Pool",
    "PoolError",
    "Query",
    "StepResult",
    "UnknownStrategyError",
    "build_pool",
    "build_pool_from_line_spectra",
    "build_pool_from_spectra",
    "build_pool_from_synthetic",
    "get_strategy",
    "line_spectra",
    "preprocess",
]
