"""The widgets in a real browser: JupyterLab from our hub, driven by Debian's chromium.

A real JupyterHub (tests/helpers/hub.py: our spawner, configurable-http-proxy) spawns alice's
server with its Dask cluster; a real LAMOST spectrum sits in the store's shared area. Chromium
logs in through the hub's login form, opens a notebook in JupyterLab, runs it (the notebook
creates ``StoreBrowser()`` with no arguments), clicks the ``spectra`` directory and then the
LAMOST file in the rendered listing, and waits for the spectrum viewer's canvas. The
screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers.browser import page_sleep, write_lab_settings
from helpers.polling import wait_until

pytestmark = pytest.mark.browser


NOTEBOOK_CELLS = [
    "%matplotlib widget\nfrom astrokit_widgets import StoreBrowser",
    "browser = StoreBrowser()\nbrowser",
]


_PAINTED_JS = """c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) { if (d[i + 3] > 0 && d[i] < 100) return true; }
    return false;
}"""


_VIEWER_OR_ERROR_JS = """() =>
    document.querySelector('.astrokit-store-browser .astrokit-spectrum-viewer') ||
    [...document.querySelectorAll('.astrokit-store-browser .astrokit-error')]
        .some(e => e.innerText.trim().length > 0)"""


def _notebook(cells: list[str]) -> str:
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell-{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for i, source in enumerate(cells)
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def _select_option(page, listing, text: str, timeout_s: float = 60.0, click: bool = True) -> None:
    """Choose the <option> whose label contains ``text`` in the listing <select>.

    With ``click=False`` only wait until such an option is listed.
    """
    seen: list[str] = []

    def matching() -> list[int]:
        seen[:] = listing.locator("option").all_inner_texts()
        return [i for i, label in enumerate(seen) if text in label]

    try:
        matches = wait_until(matching, timeout_s, f"a listing entry containing {text!r}", 0.2,
                             sleep=page_sleep(page))  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}; entries: {seen[:20]}") from None
    if click:
        listing.select_option(index=matches[0])


def _start_kernel(page, console: list[str], timeout_s: float = 120.0) -> None:
    """Wait until the notebook's kernel is connected and idle.

    JupyterLab sometimes asks which kernel to use (its "Select Kernel" dialog) before it
    starts one: accept the proposed Python kernel. The kernel is connected once the page
    opened its websocket (logged to the console) and the indicator reads idle.
    """
    accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")

    def kernel_ready() -> bool:
        if accept.count():
            accept.first.click()
            return False
        return bool(idle.count()) and any("Starting WebSocket" in line for line in console)

    wait_until(kernel_ready, timeout_s, "the notebook's kernel to start", 0.25,
               sleep=page_sleep(page))  # fmt: skip


def _run_all_cells(page, timeout_s: float = 180.0) -> None:
    """Run > Run All Cells, then wait until every prompt shows an execution count."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.click('li[data-command="runmenu:run-all"]')
    prompts: list[str] = []

    def all_ran() -> bool:
        failed = page.locator('[data-mime-type="application/vnd.jupyter.error"]')
        if failed.count():
            raise AssertionError(f"a notebook cell failed:\n{failed.first.inner_text()}")
        prompts[:] = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts)

    try:
        wait_until(all_ran, timeout_s, "every cell to run", 0.25, sleep=page_sleep(page))
    except AssertionError as exc:
        raise AssertionError(f"{exc}: prompts {prompts}") from None


@pytest.fixture
def hub(tmp_path):
    from helpers.hub import HubProcess

    with HubProcess(tmp_path / "hub", users=["alice"]) as running:
        yield running


def test_store_browser_opens_a_real_spectrum_in_jupyterlab(chromium, hub, lamost_files,
                                                            artifacts_dir):  # fmt: skip
    # Data first: a real LAMOST spectrum in the shared survey area of the hub's store.
    store_root = Path(hub.store_url.removeprefix("file://"))
    spectra = store_root / "shared" / "spectra"
    spectra.mkdir(parents=True, exist_ok=True)
    lrs = lamost_files["lrs"]
    shutil.copy(lrs, spectra / lrs.name)
    home = hub.run_dir / "home" / "alice"
    home.mkdir(parents=True, exist_ok=True)
    (home / "browse.ipynb").write_text(_notebook(NOTEBOOK_CELLS))
    write_lab_settings(home)

    hub.spawn("alice", {"profile": "small"}, timeout=240)

    console: list[str] = []
    page = None
    context = chromium.new_context(viewport={"width": 1400, "height": 1300})
    try:
        page = context.new_page()
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.set_default_timeout(60_000)
        # Log in through the hub's own form (alice's own password).
        page.goto(f"{hub.url}/hub/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", hub.password_for("alice"))
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url("**/user/alice/**", timeout=120_000)
        page.goto(f"{hub.url}/user/alice/lab/tree/browse.ipynb")
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        # JupyterLab may ask which kernel to use (its "Select Kernel" dialog): answer it,
        # wait for the kernel, then Run > Run All Cells through the menu, as a person would.
        _start_kernel(page, console)
        _run_all_cells(page)

        widget = page.wait_for_selector(".astrokit-store-browser", timeout=120_000)
        listing = page.locator(".astrokit-store-browser .astrokit-listing select")
        listing.wait_for()
        _select_option(page, listing, "spectra/")  # into shared/spectra
        _select_option(page, listing, lrs.name, click=False)  # listed (not yet chosen)
        widget.screenshot(path=str(artifacts_dir / "store-browser-listing.png"))
        _select_option(page, listing, lrs.name)  # the real LAMOST file

        # Either the viewer appears or the widget says what went wrong: fail fast on that.
        page.wait_for_function(_VIEWER_OR_ERROR_JS, timeout=120_000)
        errors = page.locator(".astrokit-store-browser .astrokit-error").all_inner_texts()
        assert not any(text.strip() for text in errors), errors
        viewer = page.wait_for_selector(".astrokit-store-browser .astrokit-spectrum-viewer")
        canvas = page.wait_for_selector(
            ".astrokit-spectrum-viewer .jupyter-matplotlib-figure canvas", timeout=120_000
        )
        # The figure image arrives over the comm after the first draw: wait until the
        # canvas has a real size and the status line names the file.
        page.wait_for_function("c => c.width > 200 && c.height > 100", arg=canvas, timeout=60_000)
        box = canvas.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
        assert viewer.is_visible() and widget.is_visible()
        errors = page.locator(".astrokit-store-browser .astrokit-error").all_inner_texts()
        assert not any(text.strip() for text in errors), errors
        # the metadata pane opens on a click and shows the file's FITS header
        page.locator(".astrokit-spectrum-viewer").get_by_text("Metadata and header").click()
        header = page.wait_for_selector(".astrokit-spectrum-viewer .astrokit-header pre")
        page.wait_for_function("e => e.innerText.includes('CLASS')", arg=header)
        assert "LAMOST" in header.inner_text()
        viewer.scroll_into_view_if_needed()
        # painted: some pixel of the figure is dark (axes, tick labels, the spectrum)
        page.wait_for_function(_PAINTED_JS, arg=canvas, timeout=60_000)
        page.screenshot(path=str(artifacts_dir / "store-browser-spectrum.png"), full_page=True)
    finally:
        (artifacts_dir / "console.log").write_text("\n".join(console))
        if page is not None:  # what the page looked like when it ended, pass or fail
            page.screenshot(path=str(artifacts_dir / "last-state.png"), full_page=True)
        context.close()
