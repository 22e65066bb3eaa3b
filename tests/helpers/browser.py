"""The suite's one real browser: Debian's chromium, headless, driven by Playwright.

Playwright cannot download its own browsers here, so the tests use the system's ``chromium``
(``make browser`` installs it as root). Without it a browser test is skipped on a
developer's machine but fails in CI (``CI=true``, as ``.ci/run`` sets), where a skip would
hide that the real-browser tests never ran.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM_ARGS", "find_chromium", "launch_chromium", "page_sleep", "write_lab_settings"]

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and none of the features that would reach the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str:
    """Path of chromium; skips the calling test (fails it when ``CI=true``) if there is none."""
    if DEBIAN_CHROMIUM.exists():
        return str(DEBIAN_CHROMIUM)
    found = shutil.which("chromium")
    if found:
        return found
    reason = "chromium is not installed (`make browser` installs Debian's, as root)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires the browser tests", pytrace=False)
    pytest.skip(reason)


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """A running headless chromium (a Playwright ``Browser``), closed on exit."""
    executable = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def page_sleep(page: Any) -> Callable[[float], None]:
    """A ``sleep`` for :func:`helpers.polling.wait_until` that keeps ``page``'s events flowing.

    :func:`time.sleep` would block Playwright's dispatch (console messages, bindings) while
    waiting; ``page.wait_for_timeout`` lets them through.
    """
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


def write_lab_settings(home: Path) -> None:
    """JupyterLab preferences in ``home`` for a browser test to read the page.

    JupyterLab renders only the cells in view by default ("windowing"); turning that off
    lets the test read every cell's prompt and output from the page. The news pop-up is
    turned off so that it does not cover the screenshots.
    """
    base = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab"
    prefs = {
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for rel, value in prefs.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(json.dumps(value))
