"""A real JupyterHub + configurable-http-proxy + AstroKitSpawner on 127.0.0.1, driven by REST.

One hub is shared by the module (tests run in file order and build on each other's servers):
two users with different profiles, computation from inside a server's environment, TLS
isolation, the dashboard through the hub, refusals, named servers, a dying scheduler, a hub
restart, and finally that no process of any server remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import signal
import ssl
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from astrokit_spawner.processes import ProcessRef
from distributed import Client, Security
from distributed.comm.core import FatalCommClosedError
from helpers.hub import HubProcess, SpawnFailed
from helpers.polling import wait_until
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

CONFIG = """
c.ProfilesMixin.caps_per_user = {"bob": {"max_workers": 3}}
c.ProfilesMixin.caps_per_group = {"tiny": {"max_workers": 1, "allowed_profiles": ["small"]}}
c.Spawner.poll_interval = 1  # notice a dead scheduler quickly
"""

# What a notebook cell would run: connect() with no arguments, and a bare Client().
NOTEBOOK_CODE = """
import json, distributed, astrokit
client = astrokit.connect(timeout=60)
workers = client.scheduler_info(n_workers=-1)["workers"]
square = client.submit(lambda x: x * x, 12).result()
bare = distributed.Client()
total = bare.submit(sum, [1, 2, 3]).result()
print(json.dumps({
    "n_workers": len(workers),
    "threads": sorted(w["nthreads"] for w in workers.values()),
    "memory_limits": sorted(w["memory_limit"] for w in workers.values()),
    "square": square,
    "total": total,
    "same_scheduler": bare.scheduler.address == client.scheduler.address,
    "dashboard": client.dashboard_link,
}))
"""


def processes_of(server_id: str) -> list[psutil.Process]:
    """Live processes whose environment or command line carries the server id."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("ASTROKIT_SERVER_ID") == server_id or any(
                server_id in part for part in proc.cmdline()
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def assert_nothing_left(state: dict) -> None:
    """No process of the server remains: neither its recorded pids nor anything tagged."""
    for key in ("notebook", "manager"):
        ref = ProcessRef.from_dict(state[key])
        assert ref is not None and not ref.alive(), f"{key} {state[key]} still running"
    wait_until(lambda: not processes_of(state["server_id"]), 15, "tagged processes to exit")


def run_as_notebook(env: dict[str, str], code: str = NOTEBOOK_CODE) -> dict:
    """Run Python with exactly the notebook server's environment; returns its JSON output."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=env.get("HOME"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = HubProcess(
        tmp_path_factory.mktemp("hub"),
        users=["alice", "bob", "dave", "erin"],
        config_overrides=CONFIG,
    )
    hub.start()
    hub.add_to_group("tiny", ["dave"])
    try:
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="module")
def running(hub):
    """alice on "small" (2 workers), bob on a custom profile (3 workers); bob's progress."""
    hub.spawn("alice", {"profile": "small"})
    _, bob_events = hub.spawn_with_progress("bob", {"profile": "small", "n_workers": 3})
    return {"bob_events": bob_events}


def test_each_server_gets_its_own_environment(hub, running):
    alice, bob = hub.server_env("alice"), hub.server_env("bob")
    store = hub.store_url
    assert alice["ASTROKIT_STORE_URL"] == store
    assert alice["ASTROKIT_SHARED_URL"] == f"{store}/shared"
    assert alice["ASTROKIT_USER_URL"] == f"{store}/users/alice"
    assert bob["ASTROKIT_USER_URL"] == f"{store}/users/bob"
    assert alice["ASTROKIT_MODEL_URL"] == f"{store}/shared/models/photoz-small.pt"
    assert (hub.run_dir / "store" / "users" / "alice").is_dir()
    assert (alice["ASTROKIT_PROFILE"], alice["ASTROKIT_N_WORKERS"]) == ("small", "2")
    assert (bob["ASTROKIT_PROFILE"], bob["ASTROKIT_N_WORKERS"]) == ("custom", "3")
    assert alice["ASTROKIT_SCHEDULER_ADDRESS"].startswith("tls://127.0.0.1:")
    assert alice["ASTROKIT_SCHEDULER_ADDRESS"] == alice["DASK_SCHEDULER_ADDRESS"]
    assert alice["ASTROKIT_SCHEDULER_ADDRESS"] != bob["ASTROKIT_SCHEDULER_ADDRESS"]
    port = hub.spawner_state("alice")["dashboard_port"]
    assert alice["ASTROKIT_DASHBOARD_URL"] == f"/user/alice/proxy/{port}/status"
    assert alice["HOME"].endswith("/home/alice")
    for key in (
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
    ):
        path = Path(alice[key])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path != Path(bob[key])
    # The cluster gets the store settings but never the notebook's hub token.
    manager = psutil.Process(hub.spawner_state("alice")["manager"]["pid"]).environ()
    assert manager["ASTROKIT_USER_URL"] == f"{store}/users/alice"
    assert not any(k.startswith("JUPYTERHUB_") for k in manager)


def test_progress_streams_real_stages(running):
    messages = [e.get("message", "") for e in running["bob_events"]]
    text = "\n".join(messages)
    for stage in (
        "Profile custom",
        "TLS credentials",
        "Dask scheduler up at tls://127.0.0.1:",
        "Dask workers 3/3",
        "Notebook server answering",
        "Ready: notebook and 3 Dask workers",
    ):
        assert stage in text, text
    progress = [e["progress"] for e in running["bob_events"] if "progress" in e]
    assert progress == sorted(progress) and progress[-1] == 100
    assert running["bob_events"][-1].get("ready") is True


def test_computation_from_inside_alices_server(hub, running):
    out = run_as_notebook(hub.server_env("alice"))
    assert out["n_workers"] == 2
    assert out["threads"] == [1, 1]
    assert out["memory_limits"] == [1024**3, 1024**3]
    assert out["square"] == 144 and out["total"] == 6
    assert out["same_scheduler"]
    port = hub.spawner_state("alice")["dashboard_port"]
    assert out["dashboard"] == f"/user/alice/proxy/{port}/status"
    assert run_as_notebook(hub.server_env("bob"))["n_workers"] == 3


async def _execute_in_kernel(hub: HubProcess, user: str, code: str) -> str:
    """Start a kernel in the user's server through the hub, run ``code``, return its stdout."""
    token = hub.token_for(user)
    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{hub.url}/user/{user}/api/kernels", headers=headers, json={}, timeout=60)
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    ws_url = f"{hub.url.replace('http', 'ws')}/user/{user}/api/kernels/{kernel_id}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url, headers=headers, request_timeout=60))
    msg_id = uuid.uuid4().hex
    conn.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": user,
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    out: list[str] = []
    try:
        async with asyncio.timeout(120):  # the whole exchange, not each message
            while True:
                raw = await conn.read_message()
                assert raw is not None, "kernel websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    raise AssertionError("\n".join(msg["content"]["traceback"]))
                elif kind == "execute_reply":
                    break
    finally:
        conn.close()
        # Wait for the server's half of the close handshake: until it comes the socket stays
        # open, and asyncio.run() returning would leave it to the garbage collector - an
        # "unclosed socket" ResourceWarning in whichever later test collects it.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while await conn.read_message() is not None:
                    pass
    return "".join(out)


def test_connect_from_a_kernel_in_alices_server(hub, running):
    out = asyncio.run(_execute_in_kernel(hub, "alice", NOTEBOOK_CODE))
    result = json.loads(out.strip().splitlines()[-1])
    assert result["n_workers"] == 2 and result["square"] == 144 and result["same_scheduler"]
    # The kernel runs in its own session, yet carries the server id: stop() will find it.
    kernels = [
        p
        for p in processes_of(hub.spawner_state("alice")["server_id"])
        if "ipykernel" in " ".join(p.cmdline())
    ]
    assert len(kernels) == 1
    assert os.getsid(kernels[0].pid) != os.getsid(hub.spawner_state("alice")["notebook"]["pid"])


def _client_security(env: dict[str, str]) -> Security:
    return Security(
        tls_ca_file=env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"],
        tls_client_cert=env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"],
        tls_client_key=env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"],
        require_encryption=True,
    )


def test_bobs_credentials_cannot_use_alices_cluster(hub, running):
    alice, bob = hub.server_env("alice"), hub.server_env("bob")
    address = alice["ASTROKIT_SCHEDULER_ADDRESS"]
    # Positive control, right before the refusal: alice's scheduler is up and computes with
    # alice's credentials, so what follows fails because of bob's, not a dead scheduler.
    with Client(address, security=_client_security(alice), timeout="30s") as client:
        assert client.submit(lambda x: x + 1, 41).result(timeout=60) == 42
    # bob's: refused in the TLS handshake (alice's scheduler presents a certificate bob's CA
    # did not sign), at once - not a connection timeout, which would also raise OSError.
    start = time.monotonic()
    with pytest.raises(FatalCommClosedError, match="TLS certificate does not match") as info:
        Client(address, security=_client_security(bob), timeout="5s")
    assert isinstance(info.value.__cause__ or info.value.__context__, ssl.SSLCertVerificationError)
    assert time.monotonic() - start < 5
    # The same from bob's whole environment pointed at alice's address: refused, for TLS.
    env = dict(bob, ASTROKIT_SCHEDULER_ADDRESS=address)
    result = subprocess.run(
        [sys.executable, "-c", "import astrokit; astrokit.connect(timeout=5)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ConnectError: cannot reach the Dask scheduler" in result.stderr
    assert "TLS certificate does not match" in result.stderr, result.stderr[-3000:]


def test_dashboard_through_the_hub_only_for_its_owner(hub, running):
    port = hub.spawner_state("alice")["dashboard_port"]
    path = f"/user/alice/proxy/{port}/status"
    ok = hub.get(path, token=hub.token_for("alice"))
    assert ok.status_code == 200
    assert "Dask" in ok.text and "bokeh" in ok.text.lower()
    assert hub.get(path, token=hub.token_for("bob")).status_code == 403
    anonymous = hub.get(path)
    assert anonymous.status_code in (302, 403)
    if anonymous.status_code == 302:
        assert "/hub/" in anonymous.headers["Location"]


@pytest.mark.parametrize(
    ("user", "options", "message"),
    [
        ("dave", {"profile": "small"}, "n_workers=2 is above your limit: at most 1 allowed"),
        (
            "dave",
            {"profile": "medium"},
            "profile 'medium' is not available to you; allowed: ['small']",
        ),
        ("dave", {"n_workers": "lots"}, "n_workers: expected a whole number, got 'lots'"),
        ("dave", {"gpus": 2}, "unknown option(s) ['gpus']"),
        ("dave", {"profile": "small", "n_workers": 1, "worker_memory": "2X"}, "'2X'"),
    ],
)
def test_refused_requests_name_the_value(hub, user, options, message):
    with pytest.raises(SpawnFailed) as info:
        hub.spawn(user, options)
    assert info.value.status == 400
    assert message in info.value.message
    assert hub.server(user) is None


def test_per_user_cap_over_a_named_server(hub, running):
    with pytest.raises(SpawnFailed) as info:
        hub.spawn("bob", {"profile": "large"}, server_name="big")
    assert info.value.status == 400
    assert "n_workers=4 is above your limit: at most 3 allowed" in info.value.message


def test_options_form_through_the_hub(hub):
    session = hub.login("erin")
    form = session.get(f"{hub.url}/hub/spawn/erin", timeout=30)
    assert form.status_code == 200
    # The form posts to its action URL, which carries the session's xsrf token.
    action = html.unescape(re.search(r'id="spawn_form"\s+action="([^"]+)"', form.text).group(1))
    action_url = f"{hub.url}{action}"
    for expected in ('name="profile" value="small" checked', 'value="large"', 'name="n_workers"'):
        assert expected in form.text
    # An over-cap custom value comes back on the form page with the clear message.
    refused = session.post(
        action_url,
        data={"profile": "small", "n_workers": "9"},
        timeout=60,
    )
    assert refused.status_code == 400
    assert "n_workers=9 is above your limit: at most 4 allowed" in html.unescape(refused.text)
    # A valid submission spawns the custom profile.
    accepted = session.post(
        action_url,
        data={"profile": "small", "n_workers": "1", "worker_memory": ""},
        allow_redirects=False,
        timeout=60,
    )
    assert accepted.status_code == 302
    hub.wait_ready("erin")
    env = hub.server_env("erin")
    assert (env["ASTROKIT_PROFILE"], env["ASTROKIT_N_WORKERS"]) == ("custom", "1")
    state = hub.spawner_state("erin")
    hub.stop_server("erin")
    assert_nothing_left(state)


def test_group_cap_allows_what_it_allows(hub):
    hub.spawn("dave", {"profile": "small", "n_workers": 1}, server_name="one")
    state = hub.spawner_state("dave", "one")
    assert run_as_notebook(hub.server_env("dave", "one"))["n_workers"] == 1
    hub.stop_server("dave", "one")
    assert_nothing_left(state)


def test_named_server_has_its_own_cluster_and_a_dead_scheduler_is_noticed(hub, running):
    hub.spawn("alice", {"profile": "small", "n_workers": 1}, server_name="second")
    second = hub.spawner_state("alice", "second")
    default = hub.spawner_state("alice")
    assert second["server_id"] != default["server_id"]
    assert second["scheduler_address"] != default["scheduler_address"]
    assert run_as_notebook(hub.server_env("alice", "second"))["n_workers"] == 1
    # Kill the scheduler (the cluster manager) hard: poll() must report the server stopped
    # and end the notebook and the orphaned workers.
    os.killpg(second["manager"]["pid"], signal.SIGKILL)
    wait_until(lambda: hub.server("alice", "second") is None, 30, "hub to notice")
    assert_nothing_left(second)
    assert hub.server("alice")["ready"]  # the default server is untouched


def test_hub_restart_keeps_running_clusters_and_cleans_dead_ones(hub, running):
    alice_before = hub.spawner_state("alice")
    bob_before = hub.spawner_state("bob")
    hub.stop()
    # While the hub is down, bob's notebook dies.
    os.kill(bob_before["notebook"]["pid"], signal.SIGKILL)
    hub.start()
    assert hub.server("alice")["ready"]
    assert hub.spawner_state("alice")["server_id"] == alice_before["server_id"]
    out = run_as_notebook(hub.server_env("alice"))
    assert out["n_workers"] == 2 and out["square"] == 144
    port = alice_before["dashboard_port"]
    r = hub.get(f"/user/alice/proxy/{port}/status", token=hub.token_for("alice"))
    assert r.status_code == 200
    # bob's server was found dead on start-up, reported stopped and its cluster ended.
    wait_until(lambda: hub.server("bob") is None, 30, "bob's dead server to be cleaned")
    assert_nothing_left(bob_before)


def test_stop_leaves_no_process(hub, running):
    for user in ("alice", "bob"):
        if hub.server(user) is None:
            continue
        state = hub.spawner_state(user)
        hub.stop_server(user)
        assert_nothing_left(state)
    assert hub.leftover_processes() == []
