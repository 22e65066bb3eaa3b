"""Fixtures for the end-to-end journey: a seeded hub as ``make run`` starts it.

The browser is the suite's ``chromium`` fixture (tests/conftest.py, :mod:`helpers.browser`).

The hub is a real JupyterHub subprocess loading ``deploy/local/jupyterhub_config.py`` (through
:class:`helpers.hub.HubProcess`, which only moves it to free loopback ports and a temporary
run directory), with configurable-http-proxy and AstroKit's spawner. Its store is seeded the
way ``make run`` seeds it (``astrokit platform prepare``), with a smaller survey and no model
(the quickstart notebook does not need one).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

#: The survey the journey's hub serves: small, so that seeding takes seconds.
GALAXIES = 200
SPECTRA = 20


@pytest.fixture(scope="session")
def seeded_hub(tmp_path_factory) -> Iterator[object]:
    """A running hub whose store was prepared like ``make run``'s; closed afterwards."""
    from helpers.hub import HubProcess
    from helpers.notebooks import NOTEBOOKS  # the tutorials `make run` publishes

    from astrokit.commands.platform import prepare

    # test_journey.USER and test_landing.USER
    hub = HubProcess(tmp_path_factory.mktemp("e2e-hub"), users=["ada-e2e", "grace-e2e"])
    prepare(hub.run_dir, galaxies=GALAXIES, spectra=SPECTRA, train_model=False, tutorials=NOTEBOOKS)
    hub.start()
    try:
        yield hub
    finally:
        hub.close()
