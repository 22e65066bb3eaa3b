"""Pure builders for the Kubernetes objects the AstroKit spawner creates next to a notebook pod.

Everything here is a function from plain values (a :class:`~astrokit_spawner.profiles.Profile`,
names, an owner) to plain ``dict`` manifests, with no I/O, so each one is tested against literal
expectations and validated against the schemas shipped in ``schemas/``.

The objects, all created in the notebook pod's namespace:

``DaskCluster`` (``kubernetes.dask.org/v1``)
    Built with dask-kubernetes' own :func:`~dask_kubernetes.operator.make_cluster_spec`, then
    sized from the profile (workers get ``threads_per_worker`` CPUs and ``worker_memory``
    bytes as both request and limit), given the notebook's image, the store environment through
    a Secret, and an ``ownerReference`` to the notebook pod so that Kubernetes' garbage
    collector deletes the cluster whenever the pod goes, even if the hub is down.
``Secret``
    The environment shared by scheduler and workers (store URLs and S3 credentials), so that
    credentials are not spelled out in the DaskCluster's spec, which more people can read.
``NetworkPolicy``
    Scheduler and workers accept connections only from their own pods and from the owning
    notebook pod. Without TLS on the Dask comm, this is what keeps another user's notebook in a
    shared namespace from submitting work to this user's cluster.
``ServiceAccount``/``Role``/``RoleBinding``
    The least RBAC the notebook needs: read its own DaskCluster (and, in a per-user
    namespace, its cluster's pods, logs and services). It can neither create nor scale
    clusters, so the profile caps the hub enforces cannot be bypassed from a notebook.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dask_kubernetes.operator import make_cluster_spec

if TYPE_CHECKING:
    from astrokit_spawner.profiles import Profile

__all__ = [
    "DASHBOARD_PORT",
    "DASK_GROUP",
    "DASK_PLURAL",
    "DASK_VERSION",
    "MANAGED_BY",
    "SCHEDULER_PORT",
    "ManifestError",
    "cluster_name_for",
    "cpu_quantity",
    "dashboard_url",
    "dask_cluster_manifest",
    "env_secret_manifest",
    "memory_quantity",
    "network_policy_manifest",
    "notebook_rbac_manifests",
    "owner_reference",
    "scheduler_address",
    "scheduler_host",
    "tls_secret_manifests",
    "with_tls",
    "worker_resources",
]

#: API group, version and plural of the dask-kubernetes operator's DaskCluster resource.
DASK_GROUP = "kubernetes.dask.org"
DASK_VERSION = "v1"
DASK_PLURAL = "daskclusters"
#: Ports the operator's scheduler Service exposes (fixed by dask-kubernetes' cluster spec).
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
#: Value of ``app.kubernetes.io/managed-by`` on everything we create.
MANAGED_BY = "astrokit"
#: Label put on the notebook pod naming its Dask cluster; the NetworkPolicy admits it.
CLUSTER_LABEL = "astrokit.io/dask-cluster"
#: Label the dask-kubernetes operator sets on every scheduler and worker pod.
DASK_CLUSTER_LABEL = "dask.org/cluster-name"

#: Where the per-server TLS Secrets are mounted, in the notebook and in scheduler/workers.
TLS_MOUNT = "/etc/astrokit/dask-tls"
#: File names inside the mounted Secrets (the names tls.make_credentials writes).
TLS_CA, TLS_CLUSTER_CERT, TLS_CLUSTER_KEY = "ca.pem", "cluster.pem", "cluster-key.pem"
TLS_CLIENT_CERT, TLS_CLIENT_KEY = "client.pem", "client-key.pem"

# A Service name is a DNS-1035 label (<= 63 chars) and the operator names the scheduler's
# Service "<cluster>-scheduler", so the cluster name may use 63 - len("-scheduler") chars.
_MAX_CLUSTER_NAME = 63 - len("-scheduler")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class ManifestError(ValueError):
    """A value cannot be turned into a valid Kubernetes manifest (the message says which)."""


def cluster_name_for(pod_name: str) -> str:
    """Name of the DaskCluster that belongs to notebook pod ``pod_name``.

    ``jupyter-alice`` becomes ``jupyter-alice-dask``. Names too long for the scheduler's
    Service are shortened deterministically, keeping a hash of the full name so that two
    long names never collide.

    Raises
    ------
    ManifestError
        If ``pod_name`` is not a lowercase DNS label (KubeSpawner's pod names always are).
    """
    if not pod_name or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", pod_name):
        raise ManifestError(
            f"pod name {pod_name!r} is not a DNS label (lowercase letters, digits and '-')"
        )
    name = f"{pod_name}-dask"
    if not name[0].isalpha():
        name = f"d-{name}"
    if len(name) <= _MAX_CLUSTER_NAME:
        return name
    digest = hashlib.sha256(pod_name.encode()).hexdigest()[:8]
    stem = name[: _MAX_CLUSTER_NAME - len(digest) - 1].rstrip("-")
    return f"{stem}-{digest}"


def scheduler_host(cluster_name: str, namespace: str) -> str:
    """In-cluster DNS name of the scheduler Service the operator creates for ``cluster_name``."""
    return f"{cluster_name}-scheduler.{namespace}.svc"


def scheduler_address(cluster_name: str, namespace: str, *, tls: bool = False) -> str:
    """Dask address of the cluster's scheduler, e.g. ``tcp://c-scheduler.ns.svc:8786``."""
    scheme = "tls" if tls else "tcp"
    return f"{scheme}://{scheduler_host(cluster_name, namespace)}:{SCHEDULER_PORT}"


def dashboard_url(server_base_url: str, cluster_name: str, namespace: str) -> str:
    """Dashboard link through the hub: jupyter-server-proxy in the notebook pod forwards it.

    ``/user/alice/`` gives ``/user/alice/proxy/<scheduler host>:8787/status``; the notebook
    image allows exactly these hosts in ``ServerProxy.host_allowlist``.
    """
    base = server_base_url if server_base_url.endswith("/") else server_base_url + "/"
    return f"{base}proxy/{scheduler_host(cluster_name, namespace)}:{DASHBOARD_PORT}/status"


def cpu_quantity(cpu: float) -> str:
    """Kubernetes CPU quantity: ``2`` -> ``"2"``, ``0.5`` -> ``"500m"``.

    Raises
    ------
    ManifestError
        If ``cpu`` is not positive or finer than a millicore.
    """
    if not cpu > 0:
        raise ManifestError(f"CPU amount {cpu!r} must be a positive number of cores")
    millis = round(cpu * 1000)
    if abs(millis - cpu * 1000) > 1e-6 or millis == 0:
        raise ManifestError(f"CPU amount {cpu!r} is finer than Kubernetes' 1m (0.001 core)")
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(nbytes: int) -> str:
    """Kubernetes memory quantity in binary units when exact: 4 GiB -> ``"4Gi"``.

    Raises
    ------
    ManifestError
        If ``nbytes`` is not a positive integer.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise ManifestError(f"memory amount {nbytes!r} must be a positive integer of bytes")
    for suffix, size in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if nbytes % size == 0:
            return f"{nbytes // size}{suffix}"
    return str(nbytes)


def _resources(cpu: float, memory: int) -> dict[str, dict[str, str]]:
    # Requests equal to limits: Guaranteed QoS, so a worker is never the first one evicted
    # and Dask's memory manager (which reads the limit) sees what the scheduler reserved.
    values = {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}
    return {"requests": dict(values), "limits": dict(values)}


def worker_resources(profile: Profile) -> dict[str, dict[str, str]]:
    """Requests and limits of one Dask worker container of ``profile``."""
    return _resources(profile.threads_per_worker, profile.worker_memory)


def owner_reference(pod_name: str, pod_uid: str) -> dict[str, Any]:
    """An ownerReference to the notebook pod: the garbage collector deletes dependents with it.

    ``controller`` is false because the pod does not reconcile its dependents;
    ``blockOwnerDeletion`` makes a foreground deletion of the pod wait for them.
    """
    if not pod_uid:
        raise ManifestError(f"pod {pod_name!r} has no uid yet; create it before its dependents")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": pod_name,
        "uid": pod_uid,
        "controller": False,
        "blockOwnerDeletion": True,
    }


def _metadata(
    name: str,
    namespace: str,
    labels: Mapping[str, str] | None,
    owner: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if not _DNS_LABEL.fullmatch(name) or len(name) > 63:
        raise ManifestError(f"object name {name!r} is not a DNS-1035 label of at most 63 chars")
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, **(labels or {})},
    }
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return meta


def dask_cluster_manifest(
    *,
    name: str,
    namespace: str,
    profile: Profile,
    image: str,
    env: Mapping[str, str] | None = None,
    env_secret: str | None = None,
    owner: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    scheduler_cpu: float = 0.5,
    scheduler_memory: int = 1 << 30,
    image_pull_policy: str | None = "IfNotPresent",
) -> dict[str, Any]:
    """The DaskCluster resource for one user's server.

    Parameters
    ----------
    name, namespace
        Cluster name (see :func:`cluster_name_for`) and the notebook pod's namespace.
    profile
        Sizes: ``n_workers`` replicas of ``threads_per_worker`` threads and CPUs and
        ``worker_memory`` bytes each.
    image
        Container image of scheduler and workers: the notebook's image, so that code and
        library versions match on both sides of the connection.
    env
        Plain (non-secret) variables for scheduler and workers.
    env_secret
        Name of a Secret whose keys become environment variables (``envFrom``).
    owner
        ``ownerReference`` to the notebook pod (see :func:`owner_reference`).
    labels
        Extra labels on the DaskCluster; the operator copies them to its pods.
    scheduler_cpu, scheduler_memory
        The scheduler's requests and limits (it is small next to the workers).
    image_pull_policy
        ``imagePullPolicy`` of both containers; ``None`` leaves Kubernetes' default.

    Returns
    -------
    dict
        A ``kubernetes.dask.org/v1`` ``DaskCluster`` manifest.
    """
    if profile.n_workers < 0:
        raise ManifestError(f"n_workers {profile.n_workers!r} must be 0 or more")
    if profile.threads_per_worker < 1:
        raise ManifestError(f"threads_per_worker {profile.threads_per_worker!r} must be >= 1")
    env = {key: str(value) for key, value in (env or {}).items()}
    spec = make_cluster_spec(
        name=name,
        image=image,
        n_workers=profile.n_workers,
        resources=worker_resources(profile),
        env=env,
        worker_command=(
            f"dask worker --nthreads {profile.threads_per_worker}"
            f" --memory-limit {profile.worker_memory}"
        ),
        # The cluster lives exactly as long as the notebook pod (ownerReference), not until
        # an idle timer fires: the hub's culler decides about idleness for the whole server.
        idle_timeout=0,
    )
    spec["metadata"] = _metadata(name, namespace, labels, owner)
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    # distributed ships only the `dask` command; the `dask-scheduler` alias in
    # make_cluster_spec's default arguments no longer exists.
    scheduler["args"] = ["dask", "scheduler", "--host", "0.0.0.0"]
    scheduler["resources"] = _resources(scheduler_cpu, scheduler_memory)
    for container in (worker, scheduler):
        if image_pull_policy is not None:
            container["imagePullPolicy"] = image_pull_policy
        if env_secret is not None:
            container["envFrom"] = [{"secretRef": {"name": env_secret}}]
    return copy.deepcopy(spec)


def env_secret_manifest(
    *,
    name: str,
    namespace: str,
    data: Mapping[str, str],
    owner: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An Opaque Secret holding environment variables for ``envFrom`` (``stringData``)."""
    bad = [key for key in data if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", key)]
    if bad:
        raise ManifestError(f"environment names {bad!r} are not valid Secret keys")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(name, namespace, labels, owner),
        "stringData": {key: str(value) for key, value in data.items()},
    }


def network_policy_manifest(
    *,
    name: str,
    namespace: str,
    cluster_name: str,
    operator_namespace: str | None = None,
    owner: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Ingress to the cluster's pods only from the cluster itself and its notebook pod.

    The notebook pod carries ``astrokit.io/dask-cluster: <cluster>`` (the spawner adds it);
    the operator labels scheduler and workers ``dask.org/cluster-name: <cluster>``. With
    ``operator_namespace``, pods in that namespace (the dask-kubernetes operator, which calls
    the scheduler to retire workers) are admitted too.
    """
    peers: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {DASK_CLUSTER_LABEL: cluster_name}}},
        {"podSelector": {"matchLabels": {CLUSTER_LABEL: cluster_name}}},
    ]
    if operator_namespace:
        peers.append(
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": operator_namespace}
                }
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, namespace, labels, owner),
        "spec": {
            "podSelector": {"matchLabels": {DASK_CLUSTER_LABEL: cluster_name}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers}],
        },
    }


def notebook_rbac_manifests(
    *,
    name: str,
    namespace: str,
    cluster_name: str,
    per_user_namespace: bool,
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding: the least access the notebook needs.

    The notebook reaches its scheduler by address and needs no API access to compute; the
    Role only lets it inspect its own cluster (``kubectl get daskcluster``, dask-kubernetes'
    ``KubeCluster.from_name`` in read-only use). In a shared namespace it may read only the
    one DaskCluster by name, because reading pods there would expose other users' pod specs.
    In a per-user namespace everything in it is the user's, so it may also read the
    cluster's pods, their logs and services. No verb lets it create, patch or delete, so it
    cannot scale past the profile caps.

    Returns
    -------
    list of dict
        ``[ServiceAccount, Role, RoleBinding]``, all named ``name``.
    """
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": [DASK_GROUP],
            "resources": [DASK_PLURAL],
            "resourceNames": [cluster_name],
            "verbs": ["get", "watch"],
        }
    ]
    if per_user_namespace:
        rules = [
            {
                "apiGroups": [DASK_GROUP],
                "resources": [DASK_PLURAL, "daskworkergroups"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": [""],
                "resources": ["pods", "services"],
                "verbs": ["get", "list", "watch"],
            },
            # Logs are read one pod at a time; "get" is the only verb pods/log has.
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(name, namespace, labels, None),
            "automountServiceAccountToken": True,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(name, namespace, labels, None),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(name, namespace, labels, None),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def tls_secret_manifests(
    *,
    cluster_name: str,
    namespace: str,
    pem: Mapping[str, bytes],
    owner: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster's and the notebook's TLS Secrets, from one server's credentials.

    Parameters
    ----------
    pem
        File name -> PEM bytes, as :func:`astrokit_spawner.tls.make_credentials` writes
        them (``ca.pem``, ``cluster.pem``, ``cluster-key.pem``, ``client.pem``,
        ``client-key.pem``).

    Returns
    -------
    (cluster_secret, notebook_secret)
        ``<cluster>-tls`` holds the CA and the cluster's key pair (mounted in scheduler and
        workers); ``<cluster>-tls-nb`` holds the CA and the client's key pair (mounted in the
        notebook). Neither side gets the other's key, and the CA key exists nowhere.
    """
    missing = {TLS_CA, TLS_CLUSTER_CERT, TLS_CLUSTER_KEY, TLS_CLIENT_CERT, TLS_CLIENT_KEY} - set(
        pem
    )
    if missing:
        raise ManifestError(f"TLS credentials lack {sorted(missing)}")

    def secret(name: str, files: tuple[str, ...]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": _metadata(name, namespace, labels, owner),
            "stringData": {f: pem[f].decode("ascii") for f in files},
        }

    return (
        secret(f"{cluster_name}-tls", (TLS_CA, TLS_CLUSTER_CERT, TLS_CLUSTER_KEY)),
        secret(f"{cluster_name}-tls-nb", (TLS_CA, TLS_CLIENT_CERT, TLS_CLIENT_KEY)),
    )


def with_tls(
    cluster: Mapping[str, Any], *, secret_name: str, scheduler_address: str
) -> dict[str, Any]:
    """A copy of a DaskCluster manifest whose scheduler and workers speak only TLS.

    Both mount ``secret_name`` (see :func:`tls_secret_manifests`) at :data:`TLS_MOUNT` and get
    Dask's TLS configuration through its environment variables, with encryption required;
    the scheduler listens with ``--protocol tls`` and the workers are pointed at the
    ``tls://`` address (the operator only sets ``DASK_SCHEDULER_ADDRESS`` when absent, and
    would set a ``tcp://`` one).
    """
    out = copy.deepcopy(dict(cluster))
    cert, key = f"{TLS_MOUNT}/{TLS_CLUSTER_CERT}", f"{TLS_MOUNT}/{TLS_CLUSTER_KEY}"
    tls_env = {
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": f"{TLS_MOUNT}/{TLS_CA}",
        "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT": cert,
        "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY": key,
        "DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT": cert,
        "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY": key,
        # the scheduler and workers are clients of each other too
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": cert,
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": key,
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
    }
    volume = {"name": "dask-tls", "secret": {"secretName": secret_name}}
    mount = {"name": "dask-tls", "mountPath": TLS_MOUNT, "readOnly": True}
    for role in ("scheduler", "worker"):
        pod_spec = out["spec"][role]["spec"]
        pod_spec["volumes"] = [*pod_spec.get("volumes", []), volume]
        container = pod_spec["containers"][0]
        env = dict(tls_env)
        if role == "worker":
            env["DASK_SCHEDULER_ADDRESS"] = scheduler_address
        container["env"] = [*(container.get("env") or []), *_env_list(env)]
        container["volumeMounts"] = [*container.get("volumeMounts", []), mount]
        if role == "scheduler":
            container["args"] = [*container["args"], "--protocol", "tls"]
    return out


def _env_list(env: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": key, "value": value} for key, value in env.items()]
