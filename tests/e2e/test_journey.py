"""A user's whole journey in a real browser (Debian chromium through Playwright).

Log in at the hub, see the options form, pick a profile, watch the spawn progress, land in
JupyterLab, run the quickstart notebook's cells, open the dashboard link and see the Dask
status page with the user's workers, stop the server from the hub's control panel - and find
no process of that server left. A screenshot of each step goes to ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from pathlib import Path

import psutil
import pytest
from helpers.browser import write_lab_settings
from helpers.polling import wait_until
from playwright.sync_api import Error as PlaywrightError

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"
USER = "ada-e2e"  # unique: the process scan must not see other tests' users
PROFILE = "small"
PROFILE_WORKERS = 2
ERROR_MIME = "application/vnd.jupyter.error"


# Installed before the spawn-pending page loads: every line JupyterHub appends to the
# progress log is passed to the test as it appears.
RECORD_PROGRESS_EVENTS = """
new MutationObserver((records) => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.classList && node.classList.contains("progress-log-event")) {
        window.astrokitProgressEvent(node.textContent);
      }
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


class Shots:
    """Numbered full-page screenshots: ``NN-step.png`` in the test's artifacts directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        for old in directory.glob("*.png"):
            old.unlink()

    def __call__(self, page, step: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def server_processes(server_id: str, user: str) -> list[psutil.Process]:
    """Live processes that carry the server's id or run for ``user`` (cmdline or env)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.cmdline())
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if (
            server_id in cmdline
            or env.get("ASTROKIT_SERVER_ID") == server_id
            or env.get("JUPYTERHUB_USER") == user
        ):
            found.append(proc)
    return found


def whole_commands(procs: list[psutil.Process]) -> str:
    """Every process's whole command line (``describe`` cuts them short), one per line."""
    lines = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            lines.append(" ".join(proc.cmdline()))
    return "\n".join(lines)


def describe(procs: list[psutil.Process]) -> str:
    """One line per process: pid and the start of its command line."""
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid}: {' '.join(proc.cmdline())[:160]}")
        except psutil.Error:
            lines.append(f"{proc.pid}: (gone)")
    return "\n".join(lines)


def run_all_cells(page, timeout: float) -> None:
    """Run every cell through JupyterLab's Run menu and wait until the last one finished."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.click('li[data-command="runmenu:run-all"]')

    def finished() -> bool:
        errors = page.locator(f'[data-mime-type="{ERROR_MIME}"]')
        if errors.count():
            raise AssertionError(f"a notebook cell failed:\n{errors.first.inner_text()}")
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts)

    wait_until(finished, timeout, "every quickstart cell to run")


def provision_home(home: Path) -> None:
    """What the user finds in their home: the quickstart notebook and two lab preferences."""
    write_lab_settings(home)
    shutil.copy(QUICKSTART, home / QUICKSTART.name)


def test_user_journey(chromium, seeded_hub, artifacts_dir):
    shot = Shots(artifacts_dir)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    try:
        journey(seeded_hub, context, shot)
    except BaseException:
        # what each open page showed when the journey failed
        for i, page in enumerate(context.pages):
            # the page may be gone; the other screenshots still help
            with contextlib.suppress(Exception):
                shot(page, f"failure-page{i}")
        raise
    finally:
        context.close()
    print(f"screenshots in {artifacts_dir}")


def journey(hub, context, shot: Shots) -> None:
    """The steps of the journey; ``shot(page, name)`` records each."""
    page = context.new_page()
    started = time.monotonic()
    home = hub.run_dir / "home" / USER  # the spawner's default home_dir_template
    provision_home(home)

    # 1. Log in with the user's own password.
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", hub.password_for(USER))
    shot(page, "login")
    page.click("#login_submit")

    # 2. The options form: one radio button per profile; pick ours.
    page.wait_for_url(re.compile(r"/hub/spawn"))
    radios = page.locator('input[type="radio"][name="profile"]')
    names = [radios.nth(i).get_attribute("value") for i in range(radios.count())]
    assert PROFILE in names and len(names) >= 2, names
    page.check(f'input[type="radio"][name="profile"][value="{PROFILE}"]')
    shot(page, "options-form")

    # 3. Progress: the spawn-pending page streams the spawner's stages until the lab opens.
    # The page itself reports each line as it is added: the last ones ("Dask workers 2/2")
    # arrive just before the page leaves for the lab, too late for polling from here to
    # see them every time (CI once missed it).
    seen: list[str] = []
    page.expose_function("astrokitProgressEvent", lambda text: seen.append(text.strip()))
    page.add_init_script(RECORD_PROGRESS_EVENTS)
    page.locator('#spawn_form [type="submit"]').click()

    page.wait_for_url(re.compile(r"/hub/spawn-pending/|/user/"), timeout=30_000)
    if "/spawn-pending/" in page.url:
        # Best effort only: the spawn may finish, and the page leave for the lab, meanwhile.
        with contextlib.suppress(PlaywrightError):
            page.click("#progress-details summary", timeout=2_000)  # open the event log
            page.wait_for_selector("#progress-log .progress-log-event", timeout=5_000)
    # Outside the suppress, so the step's screenshot is always saved (showing the lab
    # loading if the spawn was already done) and a failure to take it fails the test.
    shot(page, "progress")
    # A Playwright wait, not a sleep loop: the sync API delivers the page's calls of
    # astrokitProgressEvent (and its navigations) only while one of its calls runs.
    page.wait_for_url(re.compile(r"/lab"), timeout=120_000)
    model = hub.server(USER)
    assert model is not None and model["ready"]
    print("spawn progress seen in the browser:", " | ".join(seen))
    # A warm start (astrokit_spawner.warm_start) can be done before the hub shows the
    # progress page at all (JupyterHub waits slow_spawn_timeout, 10 s, first), or before the
    # page opens its event stream, when the hub sends its own last event alone. Where the
    # page saw the spawner's stages, they arrive in order, the last of them before the hub's
    # own. (The stages of a stream opened with the request: test_hub_integration's
    # spawn_with_progress.)
    assert not seen or seen[-1].startswith("Server ready at"), seen
    if len(seen) > 1:
        workers_up = f"Dask workers {PROFILE_WORKERS}/{PROFILE_WORKERS}"
        assert workers_up in seen, seen
        ready = next(i for i, e in enumerate(seen) if e.startswith("Ready: notebook and"))
        assert seen.index("Starting the Dask scheduler") < seen.index(workers_up) < ready, seen

    # 4. JupyterLab.
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.wait_for_selector(f".jp-DirListing-content >> text={QUICKSTART.name}", timeout=60_000)
    shot(page, "jupyterlab")

    # 5. The quickstart notebook, run cell by cell by JupyterLab.
    state = hub.spawner_state(USER)
    server_id = state["server_id"]
    assert Path(hub.server_env(USER)["HOME"]) == home
    page.goto(f"{hub.url}/user/{USER}/lab/tree/{QUICKSTART.name}")
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=60_000)
    page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=90_000)
    run_all_cells(page, timeout=150)
    outputs = page.locator(".jp-NotebookPanel .jp-OutputArea").all_inner_texts()
    text = "\n".join(outputs)
    # The scale step scaled the spawner's real cluster down, and connect() brought it back.
    assert "after scale_cluster(client, 1): 1 worker" in text, text[-2000:]
    assert f"{PROFILE_WORKERS} workers ready" in text, text[-2000:]
    assert f"profile: {PROFILE}" in text
    assert re.search(r"\d+ galaxies read by workers", text)
    page.locator(".jp-OutputArea-output img").last.scroll_into_view_if_needed()
    shot(page, "quickstart-result")  # the colour-redshift plot computed by the workers
    link = page.locator("a.astrokit-dashboard")
    link.scroll_into_view_if_needed()
    shot(page, "quickstart-dashboard-link")

    # 6. The dashboard link goes through the hub to this user's scheduler.
    href = link.get_attribute("href")
    assert href == f"/user/{USER}/proxy/{state['dashboard_port']}/status", href
    with context.expect_page() as opened:
        link.click()
    dashboard = opened.value
    dashboard.wait_for_load_state()
    assert dashboard.url == f"{hub.url}{href}"
    wait_until(lambda: "Dask" in dashboard.title(), 30, "the Dask status page")
    dashboard.wait_for_selector(".bk-Figure, .bk-root, canvas", timeout=30_000)
    dashboard.wait_for_timeout(1500)  # let bokeh draw its first frame for the screenshot
    shot(dashboard, "dashboard-status")
    info = dashboard.context.new_page()
    info.goto(f"{hub.url}/user/{USER}/proxy/{state['dashboard_port']}/info/main/workers.html")
    assert f"Scheduler {state['scheduler_address']}" in info.inner_text("h1")
    rows = info.locator("table tr").all_inner_texts()
    workers = {m.group(0) for row in rows if (m := re.search(r"tls://127\.0\.0\.1:\d+", row))}
    shot(info, "dashboard-workers")
    assert len(workers) == PROFILE_WORKERS, rows

    # 7. Stop the server from the hub's control panel.
    alive_before = server_processes(server_id, USER)
    listing = describe(alive_before)
    # the scan sees what there is to stop: notebook server, kernel, cluster manager, workers
    assert len(alive_before) >= 3 + PROFILE_WORKERS, listing
    commands = whole_commands(alive_before)
    assert "jupyterhub-singleuser" in commands and "ipykernel" in commands, listing
    assert "astrokit_spawner.cluster_manager" in commands, listing
    page.goto(f"{hub.url}/hub/home")
    page.wait_for_selector("#stop")
    shot(page, "control-panel")
    page.click("#stop")
    wait_until(lambda: hub.server(USER) is None, 60, "the hub to report the server stopped")
    page.wait_for_selector("#start", state="visible", timeout=30_000)
    shot(page, "stopped")
    # The dashboard went with the server: the hub now answers that the server is not running.
    response = page.goto(f"{hub.url}{href}")
    assert response is not None and response.status >= 400, response and response.status
    assert "Dask" not in page.title()
    assert "not running" in page.inner_text("body").lower(), page.inner_text("body")[:500]
    shot(page, "dashboard-after-stop")

    # 8. Nothing of the server is left: not the notebook, kernel, scheduler or any worker.
    try:
        wait_until(
            lambda: not server_processes(server_id, USER), 15, "the server's processes to end"
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; left:\n{describe(server_processes(server_id, USER))}"
        ) from None
    assert not _alive(alive_before), describe(_alive(alive_before))
    print(f"journey took {time.monotonic() - started:.1f} s")


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` still running (zombies count as ended)."""
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            continue
    return out
