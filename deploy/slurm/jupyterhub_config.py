# ruff: noqa: F821  (`get_config` and `load_subconfig` are provided by JupyterHub)
"""AstroKit on an HPC login node: the embedded default plus Dask workers as Slurm jobs.

Start it like the embedded default (see deploy/slurm/README.md)::

    ASTROKIT_RUN_DIR=/shared/astrokit/run jupyterhub -f deploy/slurm/jupyterhub_config.py

Everything below the ``load_subconfig`` line is what a site changes: the partition, account
and QOS its users may submit to, how a compute node gets the same Python environment, and
the address compute nodes reach this host on.
"""

from pathlib import Path

c = get_config()
load_subconfig(str(Path(__file__).resolve().parent.parent / "local" / "jupyterhub_config.py"))

c.AstroKitSpawner.slurm = {
    "partition": "astro",  # sbatch -p
    "account": "survey",  # sbatch -A (empty: the user's default account)
    "qos": "interactive",  # sbatch --qos (empty: the default QOS)
    "walltime": "04:00:00",  # worker jobs' time limit unless the profile sets one
    # The compute nodes run the same environment as the hub's cluster_python (a shared
    # filesystem path, or a module that provides it):
    "prologue": ["module load python/3.12", "source /shared/astrokit/venv/bin/activate"],
    "python": "/shared/astrokit/venv/bin/python",
    "directives": ["--constraint=skylake"],  # any other #SBATCH line
    "interface": "ib0",  # the workers' network; the scheduler is reached through it
    # "scheduler_host": "10.1.0.5",  # default: this host's address on `interface`
    "pending_timeout": 90,  # a start fails, naming Slurm's reason, after this
}
# A start waits for the queue: keep the hub's own timeout above pending_timeout.
c.Spawner.start_timeout = 180
c.AstroKitSpawner.cluster_start_timeout = 170

# Profiles: the local ones for exploring, and HPC ones whose workers are batch jobs.
c.AstroKitSpawner.profiles = [
    {
        "name": "small",
        "display_name": "Small (this node)",
        "description": "Exploring data and plotting spectra.",
        "notebook_cpu": 1,
        "notebook_memory": "2G",
        "n_workers": 2,
        "threads_per_worker": 1,
        "worker_memory": "1G",
    },
    {
        "name": "hpc",
        "display_name": "HPC: 8 Slurm workers",
        "description": "Photo-z inference over a survey: 8 jobs x 4 cores, 16 GiB, 4 h.",
        "backend": "slurm",
        "walltime": "04:00:00",
        "notebook_cpu": 1,
        "notebook_memory": "4G",
        "n_workers": 8,
        "threads_per_worker": 4,
        "worker_memory": "16G",
    },
]
# Caps still apply to Slurm profiles (workers, threads, memory per worker and in total).
c.ProfilesMixin.default_caps = {
    "max_workers": 8,
    "max_threads_per_worker": 4,
    "max_worker_memory": "16G",
    "max_total_memory": "160G",
}
