"""The environment contract between the hub side and the notebook side.

The spawner (``astrokit_spawner``) sets these variables in every notebook server and Dask
worker it starts; the library (``astrokit.connect``, ``astrokit.store``, the widgets) reads
them so that notebook code needs no arguments. This module is the single source of truth for
the names: import them, never retype the strings.

Dask's own variables (``DASK_SCHEDULER_ADDRESS`` and the ``DASK_DISTRIBUTED__COMM__TLS__*``
family) are set too, so that a bare ``distributed.Client()`` connects over TLS as well.
"""

from __future__ import annotations

#: Root URL of the object store (``file:///...`` or ``s3://bucket``).
STORE_URL = "ASTROKIT_STORE_URL"
#: URL of the read-only shared survey area, normally ``<store>/shared``.
SHARED_URL = "ASTROKIT_SHARED_URL"
#: URL of the user's own writable prefix, normally ``<store>/users/<name>``.
USER_URL = "ASTROKIT_USER_URL"
#: S3 endpoint (MinIO, Ceph RGW, SeaweedFS...) when the store is ``s3://``; unset means AWS.
S3_ENDPOINT = "ASTROKIT_S3_ENDPOINT"
#: "1" for anonymous (public bucket) S3 access.
S3_ANON = "ASTROKIT_S3_ANON"
#: The user's Dask scheduler address (``tls://127.0.0.1:port``); mirrors DASK_SCHEDULER_ADDRESS.
SCHEDULER_ADDRESS = "ASTROKIT_SCHEDULER_ADDRESS"
#: Dashboard link that goes through the hub: ``/user/<name>/proxy/<port>/status``.
DASHBOARD_URL = "ASTROKIT_DASHBOARD_URL"
#: Number of workers the user's profile asked for (connect() waits for them).
N_WORKERS = "ASTROKIT_N_WORKERS"
#: Name of the profile the server was started with (small, medium, large, custom).
PROFILE = "ASTROKIT_PROFILE"
#: Default model checkpoint URL the platform provides (trained by ``astrokit platform prepare``).
MODEL_URL = "ASTROKIT_MODEL_URL"

# Dask's own configuration variables (see dask.config: DASK_ prefix, __ nesting). The spawner
# sets them; the library reads the settings they make through dask.config
# ("scheduler-address", "distributed.comm.tls.ca-file", ...), never these variables.
DASK_SCHEDULER_ADDRESS = "DASK_SCHEDULER_ADDRESS"
DASK_TLS_CA = "DASK_DISTRIBUTED__COMM__TLS__CA_FILE"
DASK_TLS_CLIENT_CERT = "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"
DASK_TLS_CLIENT_KEY = "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"
DASK_REQUIRE_ENCRYPTION = "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"
DASK_DASHBOARD_LINK = "DASK_DISTRIBUTED__DASHBOARD__LINK"
# dask-labextension's settings (its "labextension" section of Dask's configuration): the
# JupyterLab Dask panel lists this server's own cluster (astrokit.lab_cluster.ServerCluster).
DASK_LABEXTENSION_FACTORY_MODULE = "DASK_LABEXTENSION__FACTORY__MODULE"
DASK_LABEXTENSION_FACTORY_CLASS = "DASK_LABEXTENSION__FACTORY__CLASS"
DASK_LABEXTENSION_INITIAL = "DASK_LABEXTENSION__INITIAL"
