"""A real one-node Slurm cluster on 127.0.0.1 for tests and benchmarks.

Debian's ``munge``, ``slurmctld``, ``slurmd`` and ``slurm-client`` (``make test`` installs
them when run as root). :class:`LocalSlurm` writes a minimal ``slurm.conf`` into a working
directory - one node ``localhost`` at 127.0.0.1 with this machine's memory, process tracking
by ``/proc`` (``proctrack/linuxproc``), no task plugin, no accounting, state and spool
directories inside the working directory, free ports - and starts ``munged`` (own key and
socket), ``slurmctld -D`` and ``slurmd -D -N localhost``; commands reach it through
``SLURM_CONF`` (:attr:`LocalSlurm.env`). Nothing outside the working directory is touched,
so it coexists with any system Slurm. Typical use::

    with LocalSlurm(tmp_path) as slurm:
        subprocess.run(["sbatch", "--wrap", "true"], env=slurm.env)

The node advertises ``cpus`` CPUs (default 2) and ``OverSubscribe=FORCE`` lets jobs share
them, so tests on a small machine can run a few one-thread workers. The partition's
``MaxTime`` is ``max_time_minutes``, so a test can ask for more and see Slurm refuse.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from helpers.polling import poll

__all__ = [
    "LocalSlurm",
    "SlurmUnavailable",
    "finish",
    "notebook_process",
    "slurm_missing",
    "start_as_notebook",
]

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")


class SlurmUnavailable(RuntimeError):
    """Slurm is not installed here or its daemons did not come up."""


def slurm_missing() -> str | None:
    """Why Slurm cannot run here, or None when it can."""
    missing = [name for name in DAEMONS + CLIENTS if not _which(name)]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} not found): `make test` installs "
            "Debian's slurmctld, slurmd, slurm-client and munge when run as root "
            "(or: apt-get install slurmctld slurmd slurm-client munge)"
        )
    if os.geteuid() != 0:
        return "the Slurm tests start slurmd, which must run as root; run them as root"
    return None


def notebook_process(hub, user: str, server_name: str = "") -> psutil.Process:
    """The notebook server process of ``user``'s server on a :class:`helpers.hub.HubProcess`."""
    return psutil.Process(hub.spawner_state(user, server_name)["notebook"]["pid"])


def start_as_notebook(hub, user: str, code: str, server_name: str = "") -> subprocess.Popen:
    """Run Python as the user's notebook does: its environment, its account, its home.

    The code's stdout and stderr are pipes; :func:`finish` reads its last line as JSON.
    """
    proc = notebook_process(hub, user, server_name)
    env = proc.environ()
    uids, gids = proc.uids(), proc.gids()

    def become_the_user() -> None:
        if os.geteuid() == 0 and uids.real != 0:
            os.setgroups([])
            os.setgid(gids.real)
            os.setuid(uids.real)

    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        cwd=env.get("HOME"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=become_the_user,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> dict:
    """Wait for a :func:`start_as_notebook` process; its last stdout line as JSON."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"notebook code failed ({proc.returncode}):\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSlurm:
    """munged + slurmctld + slurmd for one node on 127.0.0.1, all state under ``workdir``.

    Parameters
    ----------
    workdir
        Empty directory for the configuration, key, state, spool and logs.
    cpus
        CPUs the node advertises.
    max_time_minutes
        The partition's ``MaxTime``.
    partition
        Partition name.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        cpus: int = 2,
        max_time_minutes: int = 60,
        partition: str = "astro",
    ) -> None:
        self.dir = Path(workdir)
        self.cpus = cpus
        self.max_time_minutes = max_time_minutes
        self.partition = partition
        self.conf = self.dir / "slurm.conf"
        self.munge_dir = self.dir / "munge"
        self.socket = self.munge_dir / "munge.socket.2"
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        """Variables that point Slurm's commands at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        return env

    def memory_mb(self) -> int:
        """The node's RealMemory: this machine's memory in MiB, less 1 GiB for the OS."""
        return max(1024, psutil.virtual_memory().total // 2**20 - 1024)

    def write_config(self) -> None:
        """The munge key, directories and ``slurm.conf``."""
        self.munge_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chmod(self.munge_dir, 0o755)  # munged refuses a socket folder others may write
        key = self.munge_dir / "munge.key"
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(1024))
        for name in ("state", "spool", "log"):
            (self.dir / name).mkdir(mode=0o755, exist_ok=True)
        d = self.dir
        partition = (
            f"PartitionName={self.partition} Nodes=localhost Default=YES "
            f"MaxTime={self.max_time_minutes} State=UP OverSubscribe=FORCE:4"
        )
        self.conf.write_text(
            f"""# written by tests/helpers/slurm.py
ClusterName=astrokit-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=5
MinJobAge=5
StateSaveLocation={d / "state"}
SlurmdSpoolDir={d / "spool"}
SlurmctldPidFile={d / "slurmctld.pid"}
SlurmdPidFile={d / "slurmd.pid"}
SlurmctldLogFile={d / "log" / "slurmctld.log"}
SlurmdLogFile={d / "log" / "slurmd.log"}
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb()} State=UNKNOWN
{partition}
"""
        )

    def _launch(self, name: str, cmd: list[str]) -> None:
        with open(self.dir / "log" / f"{name}.out", "ab") as log:
            self.procs[name] = subprocess.Popen(
                cmd,
                env=self._environ(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def start(self, timeout: float = 60.0) -> LocalSlurm:
        """Start the daemons and wait until the node is idle.

        Raises
        ------
        SlurmUnavailable
            When Slurm is missing or the node is not idle within ``timeout`` (with the logs).
        """
        reason = slurm_missing()
        if reason:
            raise SlurmUnavailable(reason)
        self.write_config()
        m = self.munge_dir
        self._launch(
            "munged",
            [
                _which("munged") or "munged",
                "--foreground",
                "--force",
                f"--key-file={m / 'munge.key'}",
                f"--socket={self.socket}",
                f"--pid-file={m / 'munged.pid'}",
                f"--seed-file={m / 'munged.seed'}",
                f"--log-file={m / 'munged.log'}",
            ],
        )
        self._wait(lambda: self.socket.exists(), 20, "munged's socket")
        self._launch("slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-f", str(self.conf)])
        self._launch(
            "slurmd", [_which("slurmd") or "slurmd", "-D", "-N", "localhost", "-f", str(self.conf)]
        )
        self._wait(lambda: self.node_state() == "idle", timeout, "the Slurm node to be idle")
        return self

    def _wait(self, check, timeout: float, what: str) -> None:
        for _ in poll(timeout, 0.2):
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    self.stop()
                    raise SlurmUnavailable(f"{name} exited ({proc.returncode}):\n{self.logs()}")
            if check():
                return
        logs = self.logs()
        self.stop()
        raise SlurmUnavailable(f"timed out after {timeout} s waiting for {what}:\n{logs}")

    def node_state(self) -> str:
        """``sinfo``'s state of the node (``idle``, ``mix``, ``alloc``...; "" if unknown)."""
        r = self.run("sinfo", "-h", "-N", "-o", "%t", check=False)
        return r.stdout.strip().rstrip("*~#") if r.returncode == 0 else ""

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a Slurm command against this cluster."""
        return subprocess.run(
            list(args),
            env=self._environ(),
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def jobs(self, name: str | None = None) -> list[dict[str, str]]:
        """Jobs in ``squeue`` (optionally only those named ``name``): id, state, reason, name."""
        args = ["squeue", "-h", "-o", "%i|%T|%r|%j|%u"]
        if name:
            args.append(f"--name={name}")
        out = self.run(*args).stdout
        keys = ("id", "state", "reason", "name", "user")
        return [dict(zip(keys, line.split("|"), strict=False)) for line in out.splitlines() if line]

    def logs(self, lines: int = 30) -> str:
        """Tails of the daemons' logs."""
        parts = []
        for path in [*sorted((self.dir / "log").glob("*")), self.munge_dir / "munged.log"]:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job, stop the daemons (our own pids) and anything they left."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                ids = [j["id"] for j in self.jobs()]
                if ids:
                    self.run("scancel", *ids, check=False)
                for _ in poll(20, 0.2):
                    if not self.jobs():
                        break
        # slurmd first (its job steps), then the controller, then munge.
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            leftovers = []
            with contextlib.suppress(psutil.NoSuchProcess):
                leftovers = psutil.Process(proc.pid).children(recursive=True)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            for child in leftovers:  # slurmstepd and job processes started by our slurmd
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
