# The notebook image, which is also the Dask scheduler and worker image (the spawner sets the
# DaskCluster's image to the notebook's), so both sides of every connection run the same code.
#
#   docker build -f deploy/kubernetes/notebook.Dockerfile -t ghcr.io/astrokit/notebook:0.1.0 .
FROM python:3.11-slim-bookworm

ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

RUN useradd --create-home --uid 1000 --shell /bin/bash jovyan

# torch first and pinned to the CPU wheel index: an unpinned torch pulls GBs of CUDA wheels.
# For GPU workers, build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN python3 -m pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"

COPY pyproject.toml README.md /tmp/astrokit/
COPY astrokit /tmp/astrokit/astrokit
COPY spawner /tmp/astrokit/spawner
COPY extension /tmp/astrokit/extension
RUN python3 -m pip install "/tmp/astrokit[lab,ml]" "dask-labextension>=7" \
    && python3 -m pip uninstall -y rfc3987-syntax \
    && rm -rf /tmp/astrokit \
    && python3 -c "import astrokit, distributed, torch; print(torch.__version__)"

COPY deploy/kubernetes/notebook/jupyter_server_config.py /etc/jupyter/jupyter_server_config.py
# Dask reads /etc/dask/*.yaml in every process: workers keep glibc's malloc defaults (torch speed)
COPY deploy/kubernetes/notebook/dask.yaml /etc/dask/astrokit.yaml

USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
# KubeSpawner passes `jupyterhub-singleuser`; the operator passes `dask scheduler|worker`.
CMD ["jupyterhub-singleuser"]
