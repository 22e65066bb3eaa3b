"""Fixtures for the end-to-end journey: a seeded hub as ``make run`` starts it, and chromium.

The hub is a real JupyterHub subprocess loading ``deploy/local/jupyterhub_config.py`` (through
:class:`helpers.hub.HubProcess`, which only moves it to free loopback ports and a temporary
run directory), with configurable-http-proxy and AstroKit's spawner. Its store is seeded the
way ``make run`` seeds it (``astrokit platform prepare``), with a smaller survey and no model
(the quickstart notebook does not need one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The survey the journey's hub serves: small, so that seeding takes seconds.
GALAXIES = 200
SPECTRA = 20


@pytest.fixture(scope="module")
def seeded_hub(tmp_path_factory) -> Iterator[object]:
    """A running hub whose store was prepared like ``make run``'s; closed afterwards."""
    from helpers.hub import HubProcess

    from astrokit.commands.platform import prepare

    hub = HubProcess(tmp_path_factory.mktemp("e2e-hub"), users=[])
    prepare(hub.run_dir, galaxies=GALAXIES, spectra=SPECTRA, train_model=False)
    hub.start()
    try:
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium driven by Playwright (headless, no network features)."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        reason = "chromium is not installed (`make browser` installs Debian's, as root)"
        # In CI (.ci/run sets CI=true) a skip would hide that the journey never ran.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires the browser tests", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
        )
        try:
            yield chromium
        finally:
            chromium.close()
