"""Pure parts of the Slurm backend, against literal values (no Slurm needed)."""

from __future__ import annotations

import pytest
from astrokit_spawner.cluster_manager import ClusterSpec
from astrokit_spawner.profiles import Profile, ProfileError
from astrokit_spawner.slurm import (
    SlurmJob,
    SlurmSettings,
    cluster_kwargs,
    job_name,
    jobs_summary,
    parse_squeue,
    parse_walltime,
    pending_failure,
)
from astrokit_spawner.slurm_spawner import STATE_KEY, SlurmSpawnerMixin
from traitlets import TraitError


def spec(**changes) -> ClusterSpec:
    values = dict(
        server_id="ada-default-1a2b3c4d",
        n_workers=2,
        threads_per_worker=2,
        memory_limit=3 * 1024**3,
        credentials_dir="/run/s/tls",
        status_file="/run/s/cluster-status.json",
        local_directory="/run/s/scratch",
        scheduler_port=40001,
        dashboard_port=40002,
        backend="slurm",
        walltime="02:00:00",
    )
    values.update(changes)
    return ClusterSpec(**values)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("30:15", 1815), ("01:00:00", 3600), ("2-00", 172800), ("1-02:03:04", 93784)],
)
def test_parse_walltime(text, seconds):
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize("bad", ["", "1h", "00:00:00", "1:2:3:4", 60])
def test_parse_walltime_names_the_bad_value(bad):
    with pytest.raises(ValueError, match="walltime"):
        parse_walltime(bad)


def test_settings_from_mapping_and_back():
    settings = SlurmSettings.from_mapping(
        {
            "partition": "astro",
            "account": "survey",
            "qos": "interactive",
            "prologue": ["module load python/3.12"],
            "directives": ["--constraint=skylake"],
            "pending_timeout": 30,
            "environment": {"SLURM_CONF": "/etc/slurm/slurm.conf"},
        }
    )
    assert settings.prologue == ("module load python/3.12",)
    assert settings.pending_timeout == 30.0
    assert SlurmSettings.from_mapping(settings.to_dict()) == settings


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"partiton": "x"}, "unknown setting"),
        ({"prologue": "module load x"}, "prologue: expected a list"),
        ({"pending_timeout": -1}, "pending_timeout"),
        ({"walltime": "soon"}, "'soon' is not a Slurm time limit"),
        ({"environment": {"A": 1}}, "environment"),
        ({"cancel_command": []}, "cancel_command"),
    ],
)
def test_settings_errors_name_the_setting(data, message):
    with pytest.raises(ValueError, match=message):
        SlurmSettings.from_mapping(data)


def test_cluster_kwargs_size_jobs_by_the_profile():
    settings = SlurmSettings(
        partition="astro",
        account="survey",
        qos="interactive",
        prologue=("module load python",),
        directives=("--constraint=skylake",),
        scheduler_host="10.0.0.5",
        python="/opt/astrokit/bin/python",
    )
    kw = cluster_kwargs(spec(), settings, security="SEC")
    assert kw["cores"] == 2 and kw["processes"] == 1
    assert kw["memory"] == f"{3 * 1024**3}B"
    assert kw["walltime"] == "02:00:00"
    assert kw["queue"] == "astro" and kw["account"] == "survey"
    assert kw["job_name"] == "astrokit-ada-default-1a2b3c4d"
    assert kw["job_extra_directives"] == ["--constraint=skylake", "--qos=interactive"]
    assert kw["job_script_prologue"][0] == "module load python"
    assert kw["job_script_prologue"][1] == "export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2"
    assert kw["job_script_prologue"][2].startswith("export DASK_INTERNAL_INHERIT_CONFIG=")
    assert kw["worker_extra_args"] == ["--lifetime", f"{7200 - 300}s"]
    assert kw["python"] == "/opt/astrokit/bin/python"
    assert kw["security"] == "SEC" and kw["protocol"] == "tls://"
    assert kw["log_directory"] == "/run/s/slurm-logs"
    assert kw["scheduler_options"] == {
        "host": "0.0.0.0",
        "port": 40001,
        "dashboard_address": "127.0.0.1:40002",
        "contact_address": "tls://10.0.0.5:40001",
    }
    assert "interface" not in kw and "local_directory" not in kw


def test_cluster_kwargs_default_walltime_and_short_jobs_without_lifetime():
    settings = SlurmSettings(walltime="00:08:00", scheduler_host="h", interface="ib0")
    kw = cluster_kwargs(spec(walltime=""), settings, security=None)
    assert kw["walltime"] == "00:08:00"
    assert kw["worker_extra_args"] == []  # 8 min is too short to retire 5 min early
    assert kw["interface"] == "ib0"
    assert kw["scheduler_options"]["interface"] is None
    assert "queue" not in kw and "account" not in kw


def test_worker_prologue_carries_astrokits_dask_settings():
    import base64
    import json

    kw = cluster_kwargs(spec(), SlurmSettings(scheduler_host="h"), security=None)
    value = kw["job_script_prologue"][-1].split("=", 1)[1].strip("'")
    config = json.loads(base64.urlsafe_b64decode(value))
    import dask.config

    from astrokit.cluster import WORKER_DASK_CONFIG

    assert config["distributed"]["nanny"] == {"pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": None}}
    for key, expected in WORKER_DASK_CONFIG.items():  # the idle timers travel too
        assert dask.config.get(key, config=config, default="missing") == expected, key


def test_parse_squeue_and_summary():
    jobs = parse_squeue(
        "12|PENDING|QOSMaxJobsPerUser|astrokit-a\n13|RUNNING|None|astrokit-a\n\n"
        "14|COMPLETING|None|astrokit-a\n"
    )
    assert [j.job_id for j in jobs] == ["12", "13", "14"]
    assert [j.alive for j in jobs] == [True, True, False]
    assert jobs_summary(jobs, 2) == "Slurm jobs: running 1/2, pending 1 (QOSMaxJobsPerUser)"
    assert jobs_summary([], 3) == "Slurm jobs: running 0/3"
    assert job_name("x") == "astrokit-x"


def test_pending_failure_hopeless_at_once_others_after_the_timeout():
    waiting = [SlurmJob("5", "PENDING", "Resources")]
    assert pending_failure(waiting, {"5": 100.0}, now=130.0, pending_timeout=60) is None
    message = pending_failure(waiting, {"5": 100.0}, now=161.0, pending_timeout=60)
    assert message == "Slurm kept job 5 pending for 61 s with reason Resources"
    hopeless = [SlurmJob("6", "PENDING", "PartitionConfig")]
    assert "reason PartitionConfig" in pending_failure(
        hopeless, {"6": 100.0}, now=100.5, pending_timeout=60
    )
    running = [SlurmJob("7", "RUNNING", "None")]
    assert pending_failure(running, {"7": 0.0}, now=1e6, pending_timeout=60) is None


def test_profile_backend_and_walltime():
    base = {
        "name": "hpc",
        "notebook_cpu": 1,
        "notebook_memory": "1G",
        "n_workers": 2,
        "threads_per_worker": 1,
        "worker_memory": "2G",
    }
    local = Profile.from_dict(base)
    assert (local.backend, local.walltime) == ("local", "")
    hpc = Profile.from_dict({**base, "backend": "slurm", "walltime": "04:00:00"})
    assert hpc.summary().startswith("2 workers x 1 thread, 2 GiB each as Slurm jobs (04:00:00);")
    assert Profile.from_dict(hpc.to_dict()) == hpc
    with pytest.raises(ProfileError, match="backend: 'pbs' is not one of"):
        Profile.from_dict({**base, "backend": "pbs"})
    with pytest.raises(ProfileError, match="walltime"):
        Profile.from_dict({**base, "backend": "slurm", "walltime": "4h"})


class _Base:
    def get_state(self):
        return {}

    def load_state(self, state):
        pass

    def clear_state(self):
        pass


class _Spawner(SlurmSpawnerMixin, _Base):
    server_id = "ada-default-1a2b3c4d"
    server_dir = ""


def test_spawner_state_keeps_job_ids_for_a_restarted_hub():
    spawner = _Spawner(slurm={"partition": "astro"})
    profile = Profile.from_dict(
        {
            "name": "hpc",
            "backend": "slurm",
            "notebook_cpu": 1,
            "notebook_memory": "1G",
            "n_workers": 2,
            "threads_per_worker": 1,
            "worker_memory": "1G",
        }
    )
    fields = spawner.slurm_spec_fields(profile)
    assert fields["backend"] == "slurm" and fields["slurm"]["partition"] == "astro"
    status = {"slurm_job_name": "astrokit-ada-default-1a2b3c4d", "slurm_jobs": [41, 42]}
    status["detail"] = "Slurm jobs: running 1/2, pending 1 (Resources)"
    assert spawner.slurm_progress(status) == status["detail"]
    assert spawner.slurm_progress(status) is None  # unchanged: no new progress line
    state = spawner.get_state()
    assert state[STATE_KEY] == {
        "job_name": "astrokit-ada-default-1a2b3c4d",
        "job_ids": ["41", "42"],
    }
    restarted = _Spawner(slurm={"partition": "astro"})
    restarted.load_state(state)
    assert (restarted.slurm_job_name, restarted.slurm_job_ids) == (
        "astrokit-ada-default-1a2b3c4d",
        ["41", "42"],
    )
    restarted.clear_state()
    assert STATE_KEY not in restarted.get_state()
    local = profile.__class__(**{**profile.to_dict(), "backend": "local"})
    assert spawner.slurm_spec_fields(local) == {}


def test_spawner_refuses_bad_settings_and_slurm_profiles_without_settings():
    from jupyterhub.spawner import SpawnException

    with pytest.raises(TraitError, match="unknown setting"):
        _Spawner(slurm={"queue": "astro"})
    profile = Profile.from_dict(
        {
            "name": "hpc",
            "backend": "slurm",
            "notebook_cpu": 1,
            "notebook_memory": "1G",
            "n_workers": 1,
            "threads_per_worker": 1,
            "worker_memory": "1G",
        }
    )
    with pytest.raises(SpawnException, match="no Slurm settings"):
        _Spawner().slurm_spec_fields(profile)
