"""Two users on one machine cannot see, change or exhaust each other's work.

A real hub (running as root, as CI does) spawns alice and bob. Every check runs code as
bob's system account - the account his notebook, kernels and terminals run as - and each
has a positive control (alice, or the platform, can do it), so none can pass vacuously:
a file that does not exist or a port that is closed would fail the control.

What is refused here is refused by the operating system (accounts, file modes, cgroups, a
packet filter) or by the hub (passwords), not by a check in AstroKit's library.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from astrokit_spawner.cgroups import detect, worker_slot
from helpers.hub import HubError, HubProcess
from helpers.kernels import kernel_client, run_in_kernel
from helpers.polling import wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="per-user accounts need a root hub (CI runs as root)",
)

#: A small notebook limit, so that the over-limit kernel test allocates little.
NOTEBOOK_MEMORY = 700 * 1024**2


def run_as(hub: HubProcess, user: str, code: str, timeout: float = 120) -> dict:
    """Run Python as ``user``'s system account (uid, gid, no other groups); return its JSON."""
    entry = pwd.getpwnam(hub.account(user))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        env={"PATH": os.environ["PATH"], "HOME": entry.pw_dir},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def attempt(hub: HubProcess, user: str, action: str) -> str:
    """Run one Python statement as ``user``; 'ok' or the exception's class name."""
    return run_as(
        hub,
        user,
        f"""
        import json, os, signal, socket, urllib.request
        try:
            {action}
            print(json.dumps("ok"))
        except Exception as exc:
            print(json.dumps(type(exc).__name__))
        """,
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess(tmp_path_factory.mktemp("isolation"), users=["alice", "bob"]) as hub:
        # The platform's shared survey area, as `astrokit platform prepare` leaves it.
        shared = Path(hub.store_url.removeprefix("file://")) / "shared"
        shared.mkdir(parents=True)
        (shared / "catalogue.csv").write_text("id,z\n1,0.1\n")
        shared.chmod(0o555)
        yield hub


@pytest.fixture(scope="module")
def servers(hub):
    """alice's and bob's running servers: {user: spawner state}."""
    options = {"profile": "small", "notebook_memory": str(NOTEBOOK_MEMORY)}
    for user in ("alice", "bob"):
        hub.spawn(user, options, timeout=240)
    return {user: hub.spawner_state(user) for user in ("alice", "bob")}


def server_processes(state: dict) -> list[psutil.Process]:
    """Every process in the server's cgroups."""
    tree = detect()
    assert tree is not None, "no usable cgroup hierarchy"
    cgroups = tree.server(state["account"], state["server_id"])
    return [psutil.Process(pid) for pid in cgroups.pids() if psutil.pid_exists(pid)]


def test_every_process_runs_under_its_own_account(hub, servers):
    uids = {}
    for user, state in servers.items():
        account = pwd.getpwnam(hub.account(user))
        assert state["account"] == account.pw_name
        procs = server_processes(state)
        # notebook, cluster manager, 2 nannies and 2 workers at least
        assert len(procs) >= 6, [p.cmdline() for p in procs]
        assert {p.uids().real for p in procs} == {account.pw_uid}
        assert {p.uids().effective for p in procs} == {account.pw_uid}
        for ref in ("notebook", "manager"):
            assert state[ref]["pid"] in {p.pid for p in procs}
        uids[user] = account.pw_uid
        home = Path(account.pw_dir)
        assert home.stat().st_uid == account.pw_uid and home.stat().st_mode & 0o777 == 0o700
    assert uids["alice"] != uids["bob"] and 0 not in uids.values()


def test_each_worker_runs_in_a_memory_slot_of_its_own(hub, servers):
    state = servers["alice"]
    tree = detect()
    profile = state["profile"]
    slots = [
        Path(files[0]).parent
        for files in (
            tree.server(state["account"], state["server_id"]).procs_files(worker_slot(k))
            for k in range(profile["n_workers"])
        )
    ]
    workers = wait_until(
        lambda: (
            [int(p) for s in slots for p in (s / "cgroup.procs").read_text().split()]
            if all((s / "cgroup.procs").read_text().split() for s in slots)
            else None
        ),
        60,
        "each worker to claim its slot",
    )
    assert len(workers) == len(set(workers)) == profile["n_workers"], workers
    for pid in workers:
        assert "distributed" in " ".join(psutil.Process(pid).cmdline())
    if tree.version == 1:
        memory_slots = [
            Path(str(s).replace("/pids/", "/memory/").replace("/cpu/", "/memory/")) for s in slots
        ]
        for slot in memory_slots:
            assert int((slot / "memory.limit_in_bytes").read_text()) == profile["worker_memory"]
        notebook = memory_slots[0].parent.parent / "notebook"
        assert int((notebook / "memory.limit_in_bytes").read_text()) == NOTEBOOK_MEMORY


def test_tls_keys_and_logs_belong_to_their_owner(hub, servers):
    key = hub.server_env("alice")["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"]
    log = Path(servers["alice"]["server_dir"]) / "notebook.log"
    for path in (key, log):
        read = f"open({str(path)!r}).read()"
        assert attempt(hub, "alice", read) == "ok"
        assert attempt(hub, "bob", read) == "PermissionError"
    assert Path(key).stat().st_mode & 0o777 == 0o600


def test_process_environment_and_signals_are_private(hub, servers):
    pid = servers["alice"]["notebook"]["pid"]
    read_environ = f"assert b'JUPYTERHUB_API_TOKEN' in open('/proc/{pid}/environ', 'rb').read()"
    assert attempt(hub, "alice", read_environ) == "ok"
    assert attempt(hub, "bob", read_environ) == "PermissionError"
    # Signal 0 checks the permission to signal without sending anything.
    assert attempt(hub, "alice", f"os.kill({pid}, 0)") == "ok"
    assert attempt(hub, "bob", f"os.kill({pid}, signal.SIGKILL)") == "PermissionError"
    assert psutil.pid_exists(pid)


def test_hub_secrets_are_root_only(hub, servers):
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "admin-password"):
        path = hub.run_dir / name
        assert path.stat().st_size > 0  # the control: it exists and root (the hub) reads it
        assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)
        for user in ("alice", "bob"):
            assert attempt(hub, user, f"open({str(path)!r}, 'rb').read()") == "PermissionError"
    # Nobody may list the run dir or the other servers' directories.
    assert attempt(hub, "bob", f"os.listdir({str(hub.run_dir / 'servers')!r})") == (
        "PermissionError"
    )


def test_store_areas_are_enforced_by_file_permissions(hub, servers):
    store = Path(hub.store_url.removeprefix("file://"))
    alice_area = store / "users" / "alice"
    write_alice = f"open({str(alice_area / 'note.txt')!r}, 'w').write('x')"
    assert attempt(hub, "alice", write_alice) == "ok"
    assert attempt(hub, "bob", write_alice) == "PermissionError"
    assert attempt(hub, "bob", f"os.listdir({str(alice_area)!r})") == "PermissionError"
    assert attempt(hub, "bob", f"os.listdir({str(store / 'users')!r})") == "PermissionError"
    # shared/: everyone reads, no user writes; the platform (root) seeds it.
    shared = store / "shared"
    read_shared = f"open({str(shared / 'catalogue.csv')!r}).read()"
    for user in ("alice", "bob"):
        assert attempt(hub, user, read_shared) == "ok"
        write = f"open({str(shared / f'{user}.txt')!r}, 'w').write('x')"
        assert attempt(hub, user, write) == "PermissionError"
    (shared / "catalogue.csv").read_text()  # root's control


def test_another_users_scheduler_refuses_a_client(hub, servers):
    code = """
    import json, os
    import distributed
    os.environ.update({env!r})
    import dask
    dask.config.refresh()
    try:
        with distributed.Client({address!r}, timeout=10) as client:
            print(json.dumps(client.submit(sum, [1, 2]).result()))
    except Exception as exc:
        print(json.dumps(type(exc).__name__))
    """
    alice_env = {k: v for k, v in hub.server_env("alice").items() if k.startswith("DASK_")}
    bob_env = {k: v for k, v in hub.server_env("bob").items() if k.startswith("DASK_")}
    address = servers["alice"]["scheduler_address"]
    assert run_as(hub, "alice", code.format(env=alice_env, address=address)) == 3
    # bob with his own credentials: alice's scheduler only accepts alice's CA.
    refused = run_as(hub, "bob", code.format(env=bob_env, address=address))
    assert refused != 3, refused


def test_dashboard_is_private_to_its_owner(hub, servers):
    port = servers["alice"]["dashboard_port"]
    fetch = f"urllib.request.urlopen('http://127.0.0.1:{port}/status', timeout=10).read()"
    assert attempt(hub, "alice", fetch) == "ok"
    refused = attempt(hub, "bob", fetch)
    assert refused in ("ConnectionResetError", "ConnectionRefusedError", "URLError"), refused

    # Through the hub: alice's own proxy link works, bob's proxy cannot reach alice's port.
    own = hub.get(f"/user/alice/proxy/{port}/status", token=hub.token_for("alice"))
    assert own.status_code == 200 and "Dask" in own.text
    other = hub.get(f"/user/bob/proxy/{port}/status", token=hub.token_for("bob"))
    assert other.status_code >= 500 or other.status_code == 404, other.status_code
    assert "Dask" not in other.text
    # and bob's token does not open alice's link
    stolen = hub.get(f"/user/alice/proxy/{port}/status", token=hub.token_for("bob"))
    assert stolen.status_code in (302, 403, 404), stolen.status_code


def test_nobody_logs_in_as_someone_else(hub):
    assert hub.login("alice") is not None  # alice's own password works
    with pytest.raises(HubError, match="refused"):
        hub.login("alice", password=hub.password_for("bob"))
    with pytest.raises(HubError, match="refused"):
        hub.login("alice", password="")
    # The passwords are stored as bcrypt hashes, never as given.
    database = (hub.run_dir / "jupyterhub.sqlite").read_bytes()
    assert hub.password_for("alice").encode() not in database
    assert b"$2b$" in database


def test_a_kernel_over_its_memory_limit_is_killed_alone(hub, servers):
    alice, alice_kernel = kernel_client(hub, "alice")
    bob, bob_kernel = kernel_client(hub, "bob")
    try:
        # Touch every page of 1.5x the notebook's limit: the cgroup's OOM killer ends it.
        alice.execute(f"hog = b'x' * {int(NOTEBOOK_MEMORY * 1.5)}")
        wait_until(lambda: not psutil.pid_exists(alice_kernel), 60, "alice's kernel to be killed")
        # alice's server itself and bob's kernel are untouched.
        assert psutil.pid_exists(servers["alice"]["notebook"]["pid"])
        assert run_in_kernel(bob, "print(6 * 7)") == "42"
        assert psutil.Process(bob_kernel).is_running()
    finally:
        alice.stop_channels()
        bob.stop_channels()


def test_stop_ends_every_process_even_escaped_ones(hub, servers):
    hub.spawn("bob", {"profile": "small"}, server_name="escape", timeout=240)
    state = hub.spawner_state("bob", "escape")
    client, _ = kernel_client(hub, "bob", "escape")
    try:
        # A process that starts its own session (setsid) and drops AstroKit's id variable
        # (`env` execs sleep, so the pid is sleep's).
        escaped = int(
            run_in_kernel(
                client,
                "import subprocess\n"
                "p = subprocess.Popen(['env', '-u', 'ASTROKIT_SERVER_ID', 'sleep', '600'],"
                " start_new_session=True)\n"
                "print(p.pid)",
            )
        )
        assert psutil.Process(escaped).pid == os.getsid(escaped)  # a session of its own
    finally:
        client.stop_channels()
    assert psutil.pid_exists(escaped)
    assert "ASTROKIT_SERVER_ID" not in psutil.Process(escaped).environ()
    hub.stop_server("bob", "escape")
    wait_until(lambda: not psutil.pid_exists(escaped), 30, "the escaped process to end")
    assert not server_processes(state)
    # The account and its home stay for the next login; bob's other server still runs.
    account = pwd.getpwnam(hub.account("bob"))
    assert Path(account.pw_dir).is_dir()
    assert psutil.pid_exists(servers["bob"]["notebook"]["pid"])


def test_test_accounts_are_removed_with_the_hub(tmp_path):
    hub = HubProcess(tmp_path, users=["carol"])
    with hub:
        hub.spawn("carol", {"profile": "small"}, timeout=240)
        assert pwd.getpwnam(hub.account("carol"))
    with pytest.raises(KeyError):
        pwd.getpwnam(hub.account("carol"))
