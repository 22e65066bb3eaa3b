"""Hub side of the Slurm backend: configuration, spec fields, progress, job ids in state, cancel.

:class:`SlurmSpawnerMixin` is a base of :class:`~astrokit_spawner.spawner.AstroKitSpawner`.
It adds the admin's ``slurm`` settings and everything the spawner needs for profiles whose
``backend`` is ``"slurm"``, through four hook points in the spawner:

1. ``ClusterSpec(..., **self.slurm_spec_fields(profile))`` in ``_start``: the spec tells the
   cluster manager to submit workers as Slurm jobs (:class:`~astrokit_spawner.slurm.SlurmBackend`);
2. ``self.slurm_progress(status)`` in ``_wait_cluster``: a progress line with the jobs as
   Slurm sees them ("running 1/2, pending 1 (Resources)") whenever it changes;
3. ``await self.cancel_slurm_jobs()`` in ``_terminate``: on stop, poll-detected death and
   failed starts, ``scancel`` every job of the server - by the ids kept in the spawner state
   and by the server's job name - even when the cluster manager is already gone;
4. ``get_state``/``load_state``/``clear_state`` here call ``super()``, so the job name and
   ids (key ``astrokit_slurm``) survive a hub restart without touching the spawner's own state.

Configuration example (``jupyterhub_config.py``)::

    c.AstroKitSpawner.slurm = {
        "partition": "astro", "account": "survey", "qos": "interactive",
        "walltime": "04:00:00", "prologue": ["module load python/3.12"],
        "interface": "ib0", "directives": ["--constraint=skylake"],
    }
    c.AstroKitSpawner.profiles = [..., {"name": "hpc", "backend": "slurm", ...}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traitlets import Dict, TraitError, validate
from traitlets.config import LoggingConfigurable

from .profiles import Profile
from .slurm import SlurmSettings, cancel_jobs, job_name

__all__ = ["SlurmSpawnerMixin"]

#: Key of the spawner state that holds the Slurm bookkeeping.
STATE_KEY = "astrokit_slurm"


class SlurmSpawnerMixin(LoggingConfigurable):
    """The ``slurm`` settings and the Slurm hooks of the local-process spawner."""

    slurm = Dict(
        help="""Enables profiles with ``"backend": "slurm"``: their Dask workers are Slurm
        batch jobs (dask-jobqueue's SLURMCluster), submitted by the server's cluster manager
        under the account it runs as, while the TLS scheduler runs with the server. Keys
        (all optional): ``partition``, ``account``, ``qos``; ``walltime`` (default job
        time limit, "HH:MM:SS"; a profile's ``walltime`` overrides it); ``prologue`` (shell
        lines before the worker, e.g. ["module load python"]); ``directives`` (extra
        #SBATCH lines without the prefix, e.g. ["--constraint=skylake"]); ``interface``
        (network interface of the workers, e.g. "ib0"); ``scheduler_host`` (the address
        compute nodes reach this host on; default: that of ``interface``, else of the host
        name); ``python`` (the environment's Python on the compute nodes; default: the
        cluster manager's); ``local_directory`` (worker scratch on the node);
        ``pending_timeout`` (seconds a start waits for pending jobs before failing with
        Slurm's reason, default 60 - keep it below Spawner.start_timeout); ``death_timeout``;
        ``lifetime_margin``; ``environment`` (variables for sbatch/squeue/scancel and the
        jobs, e.g. {"SLURM_CONF": "/etc/slurm/slurm.conf"}); ``cancel_command`` (what the
        hub runs to cancel a server's jobs when its manager is gone, default ["scancel"];
        "{user}" becomes the server's account). Empty: no Slurm profile can start. See
        deploy/slurm/README.md.""",
    ).tag(config=True)

    @validate("slurm")
    def _validate_slurm(self, proposal):
        try:
            SlurmSettings.from_mapping(proposal["value"])
        except ValueError as exc:
            raise TraitError(f"AstroKit slurm: {exc}") from exc
        return proposal["value"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slurm_job_name = ""
        self.slurm_job_ids: list[str] = []
        self._slurm_detail = ""

    # --- hook 1: the spec ---------------------------------------------------------------
    def slurm_spec_fields(self, profile: Profile) -> dict[str, Any]:
        """Extra :class:`ClusterSpec` fields for ``profile``: none for local profiles.

        Raises
        ------
        jupyterhub.spawner.SpawnException
            When the profile wants Slurm and the hub has no ``slurm`` settings.
        """
        self._slurm_detail = ""
        if profile.backend != "slurm":
            self.slurm_job_name = ""
            self.slurm_job_ids = []
            return {}
        if not self.slurm:
            from jupyterhub.spawner import SpawnException

            raise SpawnException(
                f"Profile {profile.name!r} runs its workers on Slurm, but this hub has no "
                "Slurm settings (c.AstroKitSpawner.slurm); ask an administrator",
                reason="slurm",
                status_code=500,
            )
        settings = SlurmSettings.from_mapping(self.slurm)
        self.slurm_job_name = job_name(self.server_id)
        self.slurm_job_ids = []
        return {"backend": "slurm", "walltime": profile.walltime, "slurm": settings.to_dict()}

    # --- hook 2: progress ---------------------------------------------------------------
    def slurm_progress(self, status: dict[str, Any]) -> str | None:
        """Record the job ids of a status; a new progress line when the jobs changed."""
        if status.get("slurm_job_name"):
            self.slurm_job_name = status["slurm_job_name"]
            self.slurm_job_ids = [str(i) for i in status.get("slurm_jobs") or []]
        detail = status.get("detail") or ""
        if not detail or detail == self._slurm_detail:
            return None
        self._slurm_detail = detail
        return detail

    # --- hook 3: cancel -----------------------------------------------------------------
    def _refresh_slurm_jobs(self) -> None:
        """Take the manager's latest job ids from its status file (if still there)."""
        if not self.slurm_job_name or not getattr(self, "server_dir", ""):
            return
        try:
            status = json.loads((Path(self.server_dir) / "cluster-status.json").read_text())
        except (OSError, ValueError):
            return
        if status.get("slurm_job_name") == self.slurm_job_name:
            ids = {str(i) for i in status.get("slurm_jobs") or []}
            self.slurm_job_ids = sorted(ids | set(self.slurm_job_ids), key=int)

    async def cancel_slurm_jobs(self) -> None:
        """``scancel`` every job of this server (ids from state, then by job name); waits
        until Slurm lists none of them. A no-op for servers without Slurm workers."""
        if not self.slurm_job_name:
            return
        self._refresh_slurm_jobs()
        settings = SlurmSettings.from_mapping(self.slurm or {})
        left = await cancel_jobs(
            settings,
            job_ids=self.slurm_job_ids,
            name=self.slurm_job_name,
            user=getattr(self, "account", "") or getattr(getattr(self, "user", None), "name", ""),
        )
        if left:
            self.log.error("Slurm jobs %s of %s are still queued", left, self.slurm_job_name)
        else:
            self.log.info("no Slurm job of %s is left", self.slurm_job_name)

    # --- hook 4: state ------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Adds the server's Slurm job name and ids (for a restarted hub to cancel them)."""
        state = super().get_state()
        if self.slurm_job_name:
            self._refresh_slurm_jobs()
            state[STATE_KEY] = {"job_name": self.slurm_job_name, "job_ids": self.slurm_job_ids}
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the Slurm job name and ids after a hub restart."""
        super().load_state(state)
        data = state.get(STATE_KEY) or {}
        self.slurm_job_name = str(data.get("job_name") or "")
        self.slurm_job_ids = [str(i) for i in data.get("job_ids") or []]

    def clear_state(self) -> None:
        """Forget the (stopped) server's jobs."""
        super().clear_state()
        self.slurm_job_name = ""
        self.slurm_job_ids = []
        self._slurm_detail = ""
