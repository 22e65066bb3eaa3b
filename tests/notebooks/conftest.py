"""Fixtures for running the teaching notebooks: a small seeded store and a real Dask cluster.

The store is laid out exactly as ``astrokit platform prepare`` lays out the embedded default
(``shared/survey`` with cutouts, spectra, catalogues and shards; ``shared/models``; ``users/``),
only smaller, with shards of ~2 MB so that the survey spans several of them, and a ``tiny``
photo-z model trained for one epoch (the notebooks need a working model, not a good one).
Real LAMOST and SDSS spectra are copied into ``shared/examples`` (from tests/data/lamost and the
installed test packages).

The kernel gets the environment the hub's spawner would give a notebook server: the store
URLs, the model URL, the number of workers and the scheduler address of a real
``distributed.LocalCluster`` (plain TCP on 127.0.0.1 - the TLS path is covered by the spawner
tests and the browser journey). The cluster's worker processes get the same store variables,
as the spawner's workers do.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from astrokit import env as envnames

#: Size of the test survey: enough for several shards and a non-trivial active-learning pool.
GALAXIES = 400
SPECTRA = 360
SEED = 7
#: Shard size for the test survey (the platform's default is 25 MB).
PARTITION_MB = 2.0
USER = "tester"
N_WORKERS = 2


@pytest.fixture(scope="session")
def platform_layout(tmp_path_factory) -> dict[str, str]:
    """URLs of the test platform's store (``store_layout`` plus the test user's area)."""
    from astrokit.commands.platform import store_layout

    run_dir = tmp_path_factory.mktemp("platform") / "run"
    layout = store_layout(run_dir)
    layout["user_url"] = f"{layout['users_url']}/{USER}"
    return layout


def store_environment(platform: dict[str, str]) -> dict[str, str]:
    """The store part of the spawner's environment (set for notebooks and workers alike)."""
    return {
        envnames.STORE_URL: platform["store_url"],
        envnames.SHARED_URL: platform["shared_url"],
        envnames.USER_URL: platform["user_url"],
        envnames.MODEL_URL: platform["model_url"],
    }


@pytest.fixture(scope="session")
def notebook_cluster(platform_layout) -> Iterator[object]:
    """A real 2-process, 1-thread-each Dask cluster on 127.0.0.1 (plain TCP).

    It carries the spawner's scaling plugin, as the hub's clusters do, so the quickstart's
    scale step really releases a worker and ``astrokit.connect()`` really brings it back.
    """
    from astrokit_spawner.cluster_manager import scale_plugin
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=N_WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        env={**store_environment(platform_layout), "OMP_NUM_THREADS": "1"},
    ) as cluster:
        cluster.scheduler.add_plugin(scale_plugin(cluster, N_WORKERS))
        yield cluster


@pytest.fixture(scope="session")
def seeded_platform(platform_layout, lamost_files, real_spectra_dir) -> dict[str, str]:
    """The store seeded like ``make run`` seeds it (smaller); returns ``platform_layout``.

    Seeding is the operator's job and writes the read-only shared area, so it runs as
    ``astrokit platform prepare`` does: in this process, on a temporary local cluster, not on
    the notebook's cluster, whose workers carry the user's environment and (rightly) refuse
    writes under ``shared/``.
    """
    from astrokit.commands.platform import prepare
    from astrokit.ingest import ingest
    from astrokit.survey import make_survey
    from astrokit.training import train

    layout = platform_layout
    run_dir = Path(layout["store_url"].removeprefix("file://")).parent
    make_survey(layout["survey_url"], galaxies=GALAXIES, spectra=SPECTRA, seed=SEED)
    report = ingest(
        layout["survey_url"] + "/cutouts", layout["shards_url"], partition_mb=PARTITION_MB
    )
    assert report.good_rows == GALAXIES and not report.bad, report
    Path(layout["model_url"].removeprefix("file://")).parent.mkdir(parents=True, exist_ok=True)
    train(layout["shards_url"], out=layout["model_url"], config="tiny", epochs=1, seed=SEED)

    # Real survey files next to the synthetic survey, as an installation with real data has.
    examples = Path(layout["shared_url"].removeprefix("file://")) / "examples"
    examples.mkdir(parents=True)
    shutil.copy(lamost_files["lrs"], examples)
    shutil.copy(real_spectra_dir / "SDSSJ220248.31+123656.3.fits", examples)

    # What `make run` does next: everything above exists, so prepare() only checks and freezes.
    prepared = prepare(run_dir, train_model=False)
    assert all(layout[key] == url for key, url in prepared.items())
    Path(layout["user_url"].removeprefix("file://")).mkdir(parents=True)
    return layout


@pytest.fixture(scope="session")
def kernel_env(seeded_platform, notebook_cluster) -> dict[str, str]:
    """The environment of the notebook kernel: ours, with the spawner's variables set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASTROKIT_", "DASK_", "AWS_", "JPY_", "JUPYTERHUB_"))
    }
    address = notebook_cluster.scheduler_address
    env.update(store_environment(seeded_platform))
    env.update(
        {
            envnames.SCHEDULER_ADDRESS: address,
            envnames.DASK_SCHEDULER_ADDRESS: address,
            envnames.N_WORKERS: str(N_WORKERS),
            envnames.PROFILE: "test",
            "ASTROKIT_NOTEBOOK_QUICK": "1",
            # the kernel's own numerical threads: the cluster does the heavy work
            "OMP_NUM_THREADS": "1",
            # the venv's bin first, as in a server started by the spawner
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        }
    )
    return env
