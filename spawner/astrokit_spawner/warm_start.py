"""Warm starts: a server's notebook and cluster manager forked from preloaded templates.

Three quarters of the CPU a server start takes is Python importing the same modules in
fresh interpreters: JupyterLab, jupyter-server and JupyterHub's single-user app for the
notebook, distributed and bokeh (the dashboard) for the cluster manager. At a workshop,
twenty people pay that at once on the same cores. So the hub keeps one *template* process per
kind of server process (:data:`PRELOADS`): it imports those modules once, then forks a copy
of itself for each start. The copy becomes that server's process exactly as the exec'ed
command would have (the pattern Android's zygote made known):

1. a session of its own, then into the server's cgroups (which needs root), then the
   account (groups, gid, uid), then the working directory, log, environment;
2. ``/proc/PID/cmdline`` and ``/proc/PID/environ`` show the command and environment it
   would have had (written over the template's own, for which the template reserves room),
   so ``ps``, the teardown's sweep by server id and the benchmarks see it as before;
3. what a fresh process would have had of its own: numpy's global random state,
   multiprocessing's authentication key, Dask's configuration (read again from the new
   environment), the temporary directory;
4. it runs the command's module's ``main(args)`` - ``python -m MODULE ARGS`` without the
   interpreter start and the imports.

Only commands of the form ``PYTHON [-P] -m MODULE ARGS`` with this environment's python and a
module in :data:`MODULE_ROLES` start warm; anything else, a template still importing, or one
that died, falls back to the plain exec (:meth:`WarmStarts.launch` returns ``None``).

The channel: the hub holds one end of a socket pair whose other end the template inherited
(no path on disk, so nobody else can ask it for anything). Each start sends its request with
the log file and one end of a fresh socket pair (``SCM_RIGHTS``); on that private pair the
template answers the child's pid and, when it exits, its exit code. The template exits when
the hub's end closes. What it costs in safety, shared by all forks of one template: the
address-space layout (ASLR) and Python's string-hash secret are the same in every user's
notebook server (kernels, workers and anything else they exec are fresh processes).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL, Popen
from typing import Any

__all__ = ["MODULE_ROLES", "PRELOADS", "WarmProcess", "WarmStarts", "serve"]

logger = logging.getLogger(__name__)

#: What each template imports once for all the processes it forks. Modules missing from an
#: environment are skipped (a hub without JupyterLab still starts notebooks warm).
PRELOADS: dict[str, list[str]] = {
    "notebook": [
        "astrokit_spawner.home",
        "astrokit_spawner.notebook_start",
        "jupyter_server.serverapp",
        "jupyterhub.singleuser",
        "jupyterhub.singleuser.extension",
        "jupyterlab.labapp",
        "jupyter_lsp",
        "notebook_shim",
        "jupyter_server_terminals",
        # Not dask_labextension: it makes its cluster manager, bound to the loop current at
        # import, when imported (see _import_time_loop); it is cheap once distributed is in.
        "astrokit.lab_cluster",
    ],
    "cluster": [
        "astrokit_spawner.cluster_manager",
        "astrokit_spawner.tls",
        "astrokit.cluster",
        "distributed",
        "distributed.dashboard.scheduler",
        "numpy",
    ],
}

#: The ``-m`` modules that start warm, and the template that forks them.
MODULE_ROLES = {"astrokit_spawner.home": "notebook", "astrokit_spawner.cluster_manager": "cluster"}

#: Environment variables that JupyterHub's single-user package reads when it is imported
#: (to pick the extension or the older app); a start that sets them is exec'ed as before.
IMPORT_TIME_ENV = ("JUPYTERHUB_SINGLEUSER_EXTENSION", "JUPYTERHUB_SINGLEUSER_APP")

#: Bytes a template reserves for the command line and the environment of what it forks
#: (what ``/proc/PID/cmdline`` and ``environ`` show: :func:`_show_as`).
ARGV_ROOM = 4096
ENV_ROOM = 65536
ROOM_VARIABLE = "ASTROKIT_WARM_START_ROOM"

#: Seconds a start waits for the template's answer before giving up on it.
ANSWER_TIMEOUT = 10.0

_PR_SET_DUMPABLE = 4
_libc = ctypes.CDLL(None, use_errno=True)
_kept_alive: list[Any] = []


# --- in the forked process ---------------------------------------------------------------
def _proc_areas() -> tuple[int, int, int, int]:
    """Addresses of this process's argument and environment areas (``/proc/self/stat``)."""
    with open("/proc/self/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # Fields 48-51 of proc(5) (arg_start .. env_end); the list starts at field 3.
    arg_start, arg_end, env_start, env_end = (int(v) for v in fields[45:49])
    return arg_start, arg_end, env_start, env_end


def _write_area(start: int, end: int, items: list[str]) -> bool:
    """Write NUL-terminated ``items`` over [start, end), NUL-padded; False if cut short."""
    size = end - start
    data = b"".join(item.encode("utf-8", "surrogateescape") + b"\0" for item in items)
    whole = len(data) <= size
    data = data[:size]
    if not whole:  # end on a whole entry: drop the one that did not fit
        data = data[: data.rfind(b"\0", 0, size) + 1]
    ctypes.memmove(start, data, len(data))
    ctypes.memset(start + len(data), 0, size - len(data))
    return whole


def _show_as(argv: list[str], env: dict[str, str]) -> None:
    """Make ``/proc/self/cmdline`` and ``environ`` read ``argv`` and ``env``.

    The kernel reads both from the process's own memory, in the areas the exec'ed command
    line and environment occupied - here the template's, which it padded for this. The C
    ``environ`` no longer points into that area once ``os.environ`` was replaced.
    """
    arg_start, arg_end, env_start, env_end = _proc_areas()
    # The server's own variables first: if the rest does not fit, these still identify it.
    ordered = sorted(env.items(), key=lambda kv: not kv[0].startswith("ASTROKIT_"))
    if not _write_area(env_start, env_end, [f"{k}={v}" for k, v in ordered]):
        print("astrokit warm start: environment longer than the room for it", file=sys.stderr)
    _write_area(arg_start, arg_end, argv)


def _fresh_process_state() -> None:
    """What each exec'ed process has of its own and a fork would share with its siblings."""
    import tempfile

    tempfile.tempdir = None  # worked out again from this environment (TMPDIR)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()  # the legacy global generator, from OS entropy
    if "multiprocessing" in sys.modules:
        sys.modules["multiprocessing"].current_process().authkey = os.urandom(32)
    _home_and_account_paths()
    if "dask.config" in sys.modules:
        sys.modules["dask.config"].refresh()  # DASK_* variables and the account's files


def _home_and_account_paths() -> None:
    """Paths preloaded modules work out on import from HOME or the uid: this process's now.

    The template imported them as root with ``HOME=/nonexistent``;
    ``tests/spawner/test_warm_start.py`` scans every module and traitlets default for what
    still names that home after this, so a new one in an upgrade fails there, by name.
    """
    import site

    # The user's site-packages, on sys.path where an exec'ed Python would put it.
    site.USER_BASE = site.USER_SITE = None
    site.ENABLE_USER_SITE = site.check_enableusersite()
    user_site = site.getusersitepackages()
    import sysconfig

    config_vars = getattr(sysconfig, "_CONFIG_VARS", None) or {}  # sysconfig's cached copy
    if "userbase" in config_vars:
        config_vars["userbase"] = site.USER_BASE
    if site.ENABLE_USER_SITE and os.path.isdir(user_site):
        site.addsitedir(user_site)
    dask_config = sys.modules.get("dask.config")
    if dask_config is not None:
        dask_config.paths[:] = dask_config._get_paths()  # the list refresh() reads
        dask_config.PATH = os.environ.get("DASK_CONFIG") or os.path.join(
            os.path.expanduser("~"), ".config", "dask"
        )
    if "send2trash.plat_other" in sys.modules:  # the trash folder and the uid's fallback
        importlib.reload(sys.modules["send2trash.plat_other"])
    labapp = sys.modules.get("jupyterlab.labapp")
    if labapp is not None:  # class-level defaults, worked out when the class was made
        from jupyterlab.commands import get_user_settings_dir, get_workspaces_dir

        _set_class_default(labapp.LabApp, "user_settings_dir", get_user_settings_dir())
        _set_class_default(labapp.LabApp, "workspaces_dir", get_workspaces_dir())


def _set_class_default(cls: Any, name: str, value: Any) -> None:
    """Change a traitlets class's default: the trait's, and traitlets' per-class copy."""
    cls.class_traits()[name].default_value = value
    initial = getattr(cls, "_static_immutable_initial_values", None)
    if isinstance(initial, dict) and name in initial:
        initial[name] = value


def _exit_code(code: Any) -> int:
    """The process exit status ``sys.exit(code)`` would give."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _become(request: dict[str, Any], log_fd: int) -> int:
    """Turn this fork of the template into the requested process; returns its exit code."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as Python starts
    for procs in request.get("cgroup_procs", []):
        with open(procs, "w") as handle:  # before anything else runs: it needs root
            handle.write(str(os.getpid()))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    # Nothing of the template's stays open: not its channel to the hub, nor other starts'.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    account = request.get("account")
    if account:
        os.setgroups(account["groups"])
        os.setresgid(account["gid"], account["gid"], account["gid"])
        os.setresuid(account["uid"], account["uid"], account["uid"])
        # Changing uid made the process undumpable (its /proc files root's); an exec'ed one
        # would be the account's. Nothing in it is secret: the template holds only modules.
        _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _show_as(request["argv"], request["env"])
    _fresh_process_state()
    argv = request["argv"]
    module_index = argv.index("-m") + 1
    sys.argv = [argv[module_index], *argv[module_index + 1 :]]
    module = importlib.import_module(argv[module_index])
    return _exit_code(module.main(argv[module_index + 1 :]))


def _run_forked(request: dict[str, Any], log_fd: int) -> None:
    """The forked process: become the command, run it, exit with its code (never returns)."""
    code = 1
    try:
        code = _become(request, log_fd)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# --- the template ------------------------------------------------------------------------
def preload(role: str) -> list[str]:
    """Import the role's modules; return the ones this environment lacks."""
    missing = []
    if role == "notebook":
        from .notebook_start import skip_yarn_probe

        skip_yarn_probe()  # before jupyterlab.labapp runs the probe on import
    for name in PRELOADS[role]:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _import_time_loop() -> bool:
    """Whether an import made an asyncio loop (the main thread's, not running).

    Objects made with it at import (a module-level manager scheduling its start on it) would
    be bound to that loop in every fork, and never run there: such a module must be left
    out of :data:`PRELOADS` (``dask_labextension`` is, for this reason).
    """
    import asyncio

    policy = asyncio.get_event_loop_policy()
    return getattr(getattr(policy, "_local", None), "_loop", None) is not None


def _unexpected_fds(keep: set[int]) -> list[str]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                found.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
    return found


def serve(role: str, channel: socket.socket) -> int:
    """Preload ``role``'s modules, then fork one process per request until the hub leaves."""
    started = time.process_time()
    missing = preload(role)
    if missing:
        print(f"warm start {role}: not installed, skipped: {missing}", file=sys.stderr)
    if _import_time_loop():
        print(f"warm start {role}: an import made an asyncio loop; not forking", file=sys.stderr)
        return 1
    gc.collect()  # garbage holding a descriptor would close a fork's reuse of that number
    gc.freeze()  # and what is left is never touched by the collector: pages stay shared
    if threading.active_count() != 1:  # forking a process with threads copies only one
        print(f"warm start {role}: threads after the imports; not forking", file=sys.stderr)
        return 1
    unexpected = _unexpected_fds({channel.fileno()})
    if unexpected:  # every fork closes these; an object that owns one would close a reuse
        print(f"warm start {role}: files open after the imports: {unexpected}", file=sys.stderr)
        return 1
    print(
        f"warm start {role}: ready ({len(sys.modules)} modules imported in "
        f"{time.process_time() - started:.2f} CPU-s)",
        file=sys.stderr,
        flush=True,
    )
    channel.send(b"ready")
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}  # pid -> the start's private channel
    while True:
        for key, _ in selector.select(timeout=0.25):
            sock = key.fileobj
            if sock is channel:
                try:
                    message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 2)
                except OSError:
                    message, fds = b"", []
                if not message:
                    return 0  # the hub is gone
                _start_one(message, fds, children, selector)
            else:  # a start's channel: the hub closed it (it no longer waits on that pid)
                with contextlib.suppress(OSError):
                    if sock.recv(64):
                        continue
                selector.unregister(sock)
                sock.close()
                for pid, reply in list(children.items()):
                    if reply is sock:
                        children[pid] = None  # type: ignore[assignment]
        _reap(children, selector)


def _start_one(message: bytes, fds: list[int], children: dict, selector) -> None:
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return
    reply = socket.socket(fileno=fds[0])
    log_fd = fds[1]
    try:
        request = json.loads(message)
        pid = os.fork()
    except Exception as exc:  # a request we cannot read: say so, keep serving
        with contextlib.suppress(OSError):
            reply.send(json.dumps({"error": repr(exc)}).encode())
        reply.close()
        os.close(log_fd)
        return
    if pid == 0:
        _run_forked(request, log_fd)
    os.close(log_fd)
    children[pid] = reply
    with contextlib.suppress(OSError):
        reply.send(json.dumps({"pid": pid}).encode())
    selector.register(reply, selectors.EVENT_READ)


def _reap(children: dict, selector) -> None:
    """Collect exited children and tell their starts the exit code."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        reply = children.pop(pid, None)
        if reply is not None:
            with contextlib.suppress(OSError):
                reply.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(reply)
            reply.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m astrokit_spawner.warm_start ROLE FD ROOM``: a template (started by the hub)."""
    argv = sys.argv[1:] if argv is None else argv
    role, fd = argv[0], int(argv[1])
    return serve(role, socket.socket(fileno=fd))


# --- in the hub --------------------------------------------------------------------------
class WarmProcess:
    """A process a template forked for this hub: ``pid`` and ``poll()`` like a ``Popen``."""

    def __init__(self, pid: int, channel: socket.socket):
        self.pid = pid
        self.returncode: int | None = None
        self._channel = channel
        channel.setblocking(False)

    def poll(self) -> int | None:
        """The exit code once the template reported it, else ``None``."""
        if self.returncode is not None:
            return self.returncode
        try:
            message = self._channel.recv(4096)
        except BlockingIOError:
            return None
        except OSError:
            message = b""
        if message:
            self.returncode = int(json.loads(message)["exit"])
        elif not _alive(self.pid):  # the template went away; the process has ended too
            self.returncode = -1
        else:
            return None
        self._channel.close()
        return self.returncode


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class _Template:
    proc: Popen
    channel: socket.socket
    ready: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class WarmStarts:
    """This hub's templates for ``python``: started on first use, forked from after."""

    def __init__(self, python: str, log_dir: str | Path):
        self.python = python
        self.log_dir = Path(log_dir)
        self._templates: dict[str, _Template] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every template not running yet (without waiting for its imports)."""
        for role in PRELOADS:
            self._template(role)

    def role_of(self, cmd: list[str], env: dict[str, str]) -> str | None:
        """The template that can start ``cmd``, or ``None`` if it must be exec'ed."""
        if len(cmd) < 3 or cmd[0] != self.python or any(env.get(k) for k in IMPORT_TIME_ENV):
            return None
        rest = cmd[1:]
        if rest[0] == "-P":
            rest = rest[1:]
        if len(rest) < 2 or rest[0] != "-m":
            return None
        return MODULE_ROLES.get(rest[1])

    def _template(self, role: str) -> _Template | None:
        """The role's template if it is ready; starts it (and answers ``None``) otherwise."""
        with self._lock:
            template = self._templates.get(role)
            if template is not None and template.proc.poll() is not None:
                logger.warning("warm start template %s exited (%s)", role, template.proc.poll())
                template.channel.close()
                template = None
            if template is None:
                self._templates[role] = self._start_template(role)
                return None
            if not template.ready:
                with contextlib.suppress(BlockingIOError):
                    template.ready = template.channel.recv(16, socket.MSG_DONTWAIT) == b"ready"
            return template if template.ready else None

    def _start_template(self, role: str) -> _Template:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            # Not the hub's environment (it may hold secrets every fork would inherit) and
            # not root's home (Dask and Jupyter read configuration from there on import).
            "HOME": "/nonexistent",
            ROOM_VARIABLE: "." * ENV_ROOM,
        }
        with open(self.log_dir / f"{role}.log", "ab") as log:
            proc = Popen(
                [self.python, "-P", "-m", __name__, role, str(theirs.fileno()), " " * ARGV_ROOM],
                env=env,
                stdin=DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        theirs.close()
        logger.info("warm start template %s started (pid %d)", role, proc.pid)
        return _Template(proc=proc, channel=ours)

    def launch(
        self,
        cmd: list[str],
        env: dict[str, str],
        log_fd: int,
        cwd: str | Path,
        *,
        account: Any = None,
        cgroup_procs: list[str] = (),  # type: ignore[assignment]
    ) -> WarmProcess | None:
        """Fork ``cmd`` from its template; ``None`` where it must be exec'ed instead.

        Blocks for the template's answer (milliseconds): call it off the event loop.
        """
        role = self.role_of(cmd, env)
        template = self._template(role) if role else None
        if template is None:
            return None
        request: dict[str, Any] = {
            "argv": list(cmd),
            "env": dict(env),
            "cwd": str(cwd),
            "cgroup_procs": list(cgroup_procs),
        }
        if account is not None:
            request["account"] = {
                "uid": account.uid,
                "gid": account.gid,
                "groups": os.getgrouplist(account.name, account.gid),
            }
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with template.lock:
                socket.send_fds(
                    template.channel, [json.dumps(request).encode()], [theirs.fileno(), log_fd]
                )
            theirs.close()
            ours.settimeout(ANSWER_TIMEOUT)
            answer = json.loads(ours.recv(4096) or b"{}")
        except (OSError, ValueError) as exc:
            logger.warning("warm start %s failed (%r); starting it plainly", role, exc)
            ours.close()
            theirs.close()
            return None
        if "pid" not in answer:
            logger.warning("warm start %s refused: %s", role, answer.get("error"))
            ours.close()
            return None
        return WarmProcess(int(answer["pid"]), ours)

    def close(self) -> None:
        """End the templates (their forks keep running)."""
        with self._lock:
            for template in self._templates.values():
                template.channel.close()
                with contextlib.suppress(Exception):
                    template.proc.wait(timeout=5)
            self._templates.clear()


if __name__ == "__main__":
    sys.exit(main())
