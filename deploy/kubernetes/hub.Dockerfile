# The hub image: the Zero-to-JupyterHub chart's hub image plus AstroKit's hub side
# (astrokit[hub,k8s]: the spawner, profiles, KubeSpawner, dask-kubernetes; never torch).
#
#   docker build -f deploy/kubernetes/hub.Dockerfile -t ghcr.io/astrokit/hub:0.1.0 .
#
# The chart version here must match the one in `helm upgrade --version`.
ARG Z2JH_VERSION=4.2.0
FROM quay.io/jupyterhub/k8s-hub:${Z2JH_VERSION}

USER root
COPY pyproject.toml README.md /tmp/astrokit/
COPY astrokit /tmp/astrokit/astrokit
COPY spawner /tmp/astrokit/spawner
COPY extension /tmp/astrokit/extension
RUN python3 -m pip install --no-cache-dir "/tmp/astrokit[hub,k8s]" \
    && python3 -m pip uninstall -y rfc3987-syntax \
    && rm -rf /tmp/astrokit \
    && python3 -c "import astrokit_spawner.kubernetes.spawner" \
    && ! python3 -c "import torch" 2>/dev/null

# The chart runs the hub as uid 1000 (jovyan), as in the base image.
USER 1000
