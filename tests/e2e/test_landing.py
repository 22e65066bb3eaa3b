"""What a new user lands in, seen in a real browser: tutorials, the store, the Dask panel.

After the first login the home holds the teaching notebooks (``astrokit-tutorials/``), links
to the store (``store-shared``, ``store-mine``) and ``WELCOME.md``; JupyterLab's Dask side
panel lists the server's own TLS cluster, and its task stream, progress and workers panes open
inside JupyterLab with the live dashboard - with no setup by the user.
"""

from __future__ import annotations

import re

import pytest
from helpers.browser import page_sleep
from helpers.notebooks import NOTEBOOKS
from helpers.polling import wait_until
from test_journey import Shots

pytestmark = pytest.mark.browser

USER = "grace-e2e"  # not the journey's user: its server and home are this test's own
PANES = ("Task Stream", "Progress", "Workers")


def test_first_login_lands_on_tutorials_store_and_the_dask_panel(
    chromium, seeded_hub, artifacts_dir
):
    hub = seeded_hub
    shot = Shots(artifacts_dir)
    hub.spawn(USER, {"profile": "small"})
    state = hub.spawner_state(USER)
    home = hub.run_dir / "home" / USER
    try:
        # On disk: what the spawner prepared, as the user's own account.
        tutorials = sorted(p.name for p in (home / "astrokit-tutorials").glob("*.ipynb"))
        assert tutorials == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")), tutorials
        assert (home / "store-shared" / "survey").is_dir()
        assert (home / "store-mine").resolve() == hub.run_dir / "store" / "users" / USER
        welcome = (home / "WELCOME.md").read_text()
        assert f"/user/{USER}/proxy/{state['dashboard_port']}/status" in welcome

        context = chromium.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(30_000)
        page = context.new_page()
        try:
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", USER)
            page.fill("#password_input", hub.password_for(USER))
            page.click("#login_submit")
            page.wait_for_url(re.compile(rf"/user/{USER}/lab"), timeout=60_000)
            listing = page.locator(".jp-DirListing-content")
            for name in ("astrokit-tutorials", "store-shared", "store-mine", "WELCOME.md"):
                listing.get_by_text(name, exact=True).wait_for(timeout=60_000)
            shot(page, "home")
            listing.get_by_text("astrokit-tutorials", exact=True).dblclick()
            listing.get_by_text("01-quickstart.ipynb", exact=True).wait_for()
            shot(page, "tutorials")

            # The Dask panel lists this server's cluster, named after its profile.
            page.click('li[data-id="dask-dashboard-launcher"]')
            item = page.locator(".dask-ClusterListingItem")
            item.get_by_text("Your small cluster").wait_for(timeout=60_000)
            wait_until(
                lambda: "Number of Workers: 2" in item.inner_text(),
                60,
                "the panel to show the profile's 2 workers",
                sleep=page_sleep(page),
            )
            assert state["scheduler_address"] in item.inner_text()
            item.click()  # select it: the dashboard panes become available
            url_box = page.locator(".dask-URLInput input")
            wait_until(
                lambda: url_box.input_value().endswith(f"/proxy/{state['dashboard_port']}/status"),
                30,
                "the panel to point at the cluster's dashboard",
                sleep=page_sleep(page),
            )
            shot(page, "dask-panel")
            for pane in PANES:
                page.locator(f'.dask-DashboardListing-item button[value="{pane}"]').click()
            # Each pane is a dashboard plot inside JupyterLab, served through the hub.
            frames = page.locator("#jp-main-dock-panel iframe")
            wait_until(
                lambda: frames.count() >= len(PANES),
                30,
                "the dashboard panes to open",
                sleep=page_sleep(page),
            )
            sources = [frames.nth(i).get_attribute("src") for i in range(frames.count())]
            prefix = f"/user/{USER}/proxy/{state['dashboard_port']}/individual-"
            assert sum(prefix in (src or "") for src in sources) >= len(PANES), sources
            for i in range(frames.count()):
                frames.nth(i).content_frame.locator(".bk-Canvas, canvas").first.wait_for(
                    state="attached", timeout=30_000
                )
            page.wait_for_timeout(1500)  # let bokeh draw for the screenshot
            shot(page, "dask-panes")
        finally:
            context.close()
    finally:
        hub.stop_server(USER)
