"""Warm starts: servers' notebooks and cluster managers forked from the hub's templates.

A forked process must be indistinguishable from the exec'ed one where it matters: its
account, groups, session, cgroups, working directory, environment, command line as the
system shows them, and nothing of the template's (descriptors, random state, Dask settings).
The hub-level tests run a real root hub with accounts, as CI does; the others drive the
templates directly.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import textwrap

import psutil
import pytest
from astrokit_spawner import warm_start
from astrokit_spawner.warm_start import WarmStarts
from helpers.hub import HubProcess
from helpers.polling import wait_until

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="accounts need a root hub (CI runs as root)",
)


def _template_pids() -> dict[str, int]:
    """Running templates of any hub on this machine, by role."""
    found = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "astrokit_spawner.warm_start" in cmd:
            found[cmd[cmd.index("astrokit_spawner.warm_start") + 1]] = proc.pid
    return found


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess(tmp_path_factory.mktemp("warm"), users=["alice"]) as hub:
        yield hub


@pytest.fixture(scope="module")
def state(hub):
    # The hub starts its templates with itself; the first start finds them ready.
    hub.wait_warm_start()
    hub.spawn("alice", {"profile": "small"}, timeout=240)
    return hub.spawner_state("alice")


@needs_root
def test_a_start_is_forked_from_the_templates_as_the_account(hub, state):
    templates = _template_pids()
    account = pwd.getpwnam(state["account"])
    for part, role in (("notebook", "notebook"), ("manager", "cluster")):
        proc = psutil.Process(state[part]["pid"])
        assert proc.ppid() == templates[role], (part, proc.cmdline())
        assert proc.uids() == (account.pw_uid,) * 3
        assert proc.gids() == (account.pw_gid,) * 3
        assert os.getsid(proc.pid) == proc.pid  # a session of its own, as with exec
        # What ps, the teardown's sweep and the benchmarks read: the exec'ed command's.
        env = proc.environ()
        assert env["ASTROKIT_SERVER_ID"] == state["server_id"]
        assert warm_start.ROOM_VARIABLE not in env
        assert env["HOME"] == account.pw_dir
        cmd = " ".join(proc.cmdline())
        assert state["server_id"] in cmd
        assert "-m astrokit_spawner.home" in cmd or "-m astrokit_spawner.cluster_manager" in cmd
        # Nothing of the template is open in it: no descriptor leads back to the hub.
        template_sockets = {c.fd for c in psutil.Process(templates[role]).net_connections("unix")}
        assert template_sockets, "control: the template holds its channel to the hub"
        inodes = {os.stat(f"/proc/{templates[role]}/fd/{fd}").st_ino for fd in template_sockets}
        mine = set()
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                mine.add(os.stat(f"/proc/{proc.pid}/fd/{fd}").st_ino)
            except OSError:
                continue
        assert not inodes & mine
    assert psutil.Process(state["notebook"]["pid"]).cwd() == account.pw_dir


@needs_root
def test_the_account_owns_its_forked_processes_in_proc(hub, state):
    """An exec'ed process is the account's in /proc; a fork that changed uid must be too."""
    account = pwd.getpwnam(state["account"])
    code = textwrap.dedent(
        f"""
        import json, os
        pid = {state["notebook"]["pid"]}
        env = open(f"/proc/{{pid}}/environ", "rb").read().split(b"\\0")
        ids = [e.decode() for e in env if e.startswith(b"ASTROKIT_SERVER_ID=")]
        print(json.dumps({{"owner": os.stat(f"/proc/{{pid}}").st_uid, "id": ids}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(result.stdout)
    assert seen == {"owner": account.pw_uid, "id": [f"ASTROKIT_SERVER_ID={state['server_id']}"]}


@needs_root
def test_servers_outlive_the_templates_and_stop_cleanly(hub, state):
    notebook = psutil.Process(state["notebook"]["pid"])
    hub.stop_server("alice")
    wait_until(
        lambda: not notebook.is_running() or notebook.status() == "zombie", 30, "notebook ended"
    )
    assert hub.leftover_processes() == []


# --- the templates alone -----------------------------------------------------------------
@pytest.fixture
def starts(tmp_path):
    starts = WarmStarts(sys.executable, tmp_path / "warm")
    starts.start()
    yield starts
    starts.close()


def _ready(starts: WarmStarts, role: str) -> None:
    wait_until(lambda: starts._template(role) is not None, 60, f"template {role} ready")


def test_a_failing_command_reports_its_exit_code_and_the_template_serves_on(starts, tmp_path):
    _ready(starts, "cluster")
    log = tmp_path / "manager.log"
    cmd = [sys.executable, "-m", "astrokit_spawner.cluster_manager", str(tmp_path / "no.json")]
    for _ in range(2):
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        proc = starts.launch(cmd, {"PATH": os.defpath}, fd, tmp_path)
        os.close(fd)
        assert proc is not None
        wait_until(lambda proc=proc: proc.poll() is not None, 30, "the exit code")
        assert proc.returncode == 1
    assert log.read_text().count("FileNotFoundError") == 2


def test_what_a_template_cannot_start_is_exec_ed(starts, tmp_path):
    assert starts.role_of([sys.executable, "-m", "astrokit_spawner.cluster_manager", "x"], {})
    assert starts.role_of([sys.executable, "-P", "-m", "astrokit_spawner.home", "x"], {})
    # Another python, another module, or an environment the templates' imports depend on.
    assert not starts.role_of(["/usr/bin/python3", "-m", "astrokit_spawner.home", "x"], {})
    assert not starts.role_of([sys.executable, "-m", "http.server"], {})
    assert not starts.role_of(
        [sys.executable, "-m", "astrokit_spawner.home", "x"],
        {"JUPYTERHUB_SINGLEUSER_APP": "notebook"},
    )
    fresh = WarmStarts(sys.executable, tmp_path / "cold")
    try:  # the template is still importing: the caller starts the process itself
        cmd = [sys.executable, "-m", "astrokit_spawner.cluster_manager", "x"]
        assert fresh.launch(cmd, {}, 2, tmp_path) is None
    finally:
        fresh.close()


def test_a_fork_has_its_own_random_state_and_settings(tmp_path):
    """Two forks of one process differ where two exec'ed processes would."""
    import numpy as np

    results = []
    for n in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the fork
            os.close(read)
            os.environ["DASK_ASTROKIT_TEST_SETTING"] = str(n)
            warm_start._fresh_process_state()
            import dask

            setting = dask.config.get("astrokit-test-setting")
            out = {"random": np.random.random(), "setting": setting}
            os.write(write, json.dumps(out).encode())
            os._exit(0)
        os.close(write)
        results.append(json.loads(os.read(read, 4096)))
        os.close(read)
        os.waitpid(pid, 0)
    assert results[0]["random"] != results[1]["random"]
    assert [r["setting"] for r in results] == [0, 1]


@pytest.mark.parametrize("role", sorted(warm_start.PRELOADS))
def test_a_template_s_imports_leave_nothing_a_fork_would_misuse(role):
    """No asyncio loop, thread or open file after the imports (each would break forks)."""
    code = textwrap.dedent(
        f"""
        import json, threading
        from astrokit_spawner import warm_start
        missing = warm_start.preload({role!r})
        print(json.dumps([missing, warm_start._import_time_loop(),
                          threading.active_count(), warm_start._unexpected_fds(set())]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    missing, loop, threads, files = json.loads(out.stdout.strip().splitlines()[-1])
    assert (missing, loop, threads, files) == ([], False, 1, [])


def test_an_import_that_makes_a_loop_is_detected():
    """The control: dask_labextension makes its manager on a loop at import."""
    code = (
        "import json, dask_labextension; from astrokit_spawner import warm_start; "
        "print(json.dumps(warm_start._import_time_loop()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) is True


#: Run in a fresh interpreter: the template's imports under one home, then a fork's
#: re-derivation under another; prints what still names the template's home.
SCAN_FOR_THE_TEMPLATE_HOME = """
import json, os, sys, traitlets
from astrokit_spawner import warm_start
template_home = os.environ["HOME"]
warm_start.preload(sys.argv[1])
os.environ["HOME"] = "/home/someone"
warm_start._fresh_process_state()

def strings(value):
    if type(value) is str:
        yield value
    elif type(value) in (list, tuple):
        yield from (v for v in value[:100] if type(v) is str)
    elif type(value) is dict and len(value) < 1000:
        yield from (v for v in value.values() if type(v) is str)

found = []
for name, module in list(sys.modules.items()):
    try:
        items = list(vars(module).items())
    except TypeError:
        continue
    for attr, value in items:
        if name in ("__main__", "__mp_main__"):  # this script
            continue
        found += [f"{name}.{attr}" for s in strings(value) if template_home in s]
        if isinstance(value, type) and issubclass(value, traitlets.HasTraits):
            initial = getattr(value, "_static_immutable_initial_values", {})
            found += [f"{name}.{attr}.{k}" for k, v in initial.items() if template_home in str(v)]
            for trait_name, trait in value.class_traits().items():
                default = getattr(trait, "default_value", None)
                where = f"{name}.{attr}.{trait_name}"
                found += [where for s in strings(default) if template_home in s]
print(json.dumps(sorted(set(found))))
"""


@pytest.mark.parametrize("role", sorted(warm_start.PRELOADS))
def test_no_preloaded_module_keeps_the_template_s_home(role, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path / "template-home")}
    out = subprocess.run(
        [sys.executable, "-P", "-c", SCAN_FOR_THE_TEMPLATE_HOME, role],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
