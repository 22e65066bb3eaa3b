"""A real one-node Slurm cluster on 127.0.0.1, shared by the Slurm tests of a session.

Where Slurm cannot run (not installed, not root) the tests fail with a message that says so:
they never skip silently (``make test`` installs Slurm when run as root, as CI does).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from helpers.slurm import LocalSlurm, SlurmUnavailable, slurm_missing


@pytest.fixture(scope="session")
def slurm():
    """munged + slurmctld + slurmd (one node, 2 CPUs, partition MaxTime 60 min).

    Its directory is outside pytest's 0700 temporary root: the users' accounts (when the
    hub runs as root) must read ``slurm.conf`` and reach munge's socket.
    """
    reason = slurm_missing()
    if reason:
        pytest.fail(reason, pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix="astrokit-slurm-"))
    cluster = LocalSlurm(workdir)
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"Slurm did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
