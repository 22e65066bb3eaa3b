"""``AstroKitKubeSpawner``: KubeSpawner plus a per-server DaskCluster, with AstroKit's profiles.

The spawn, in order (KubeSpawner's own ``_start`` drives it; we hook in at three points):

1. :meth:`AstroKitKubeSpawner.load_user_options` (KubeSpawner calls it first): resolve the
   request against the profiles and caps (:class:`~astrokit_spawner.options.ProfilesMixin`,
   :class:`~jupyterhub.spawner.SpawnException` on a bad request), size the notebook from the
   profile, label it for the NetworkPolicy and, if configured, create the notebook's
   ServiceAccount/Role/RoleBinding, which must exist before a pod can name them.
2. KubeSpawner creates the pod. Its ``after_pod_created_hook`` (ours by default; an admin's
   hook is chained after it) receives the pod with its ``uid`` and creates the env Secret, the
   NetworkPolicy and the ``DaskCluster``, each with an ``ownerReference`` to the pod: if the
   pod disappears by any route (stop, culler, ``kubectl delete``, node loss), Kubernetes'
   garbage collector removes them, even while the hub is down.
3. Once the pod runs, ``_start`` waits for the dask-kubernetes operator to report the cluster
   ``Running`` (``dask_cluster_start_timeout``), so ``start()`` returns a server whose cluster
   is there, and a missing operator is a clear error instead of a hanging notebook.

``stop()`` deletes the cluster and its companions explicitly and then the pod. ``poll()`` is
KubeSpawner's (the pod is the server). ``progress()`` merges the pod's Kubernetes events with
the cluster's steps and never raises.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SpawnException
from jupyterhub.traitlets import ByteSpecification
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from kubespawner.slugs import safe_slug
from traitlets import Bool, Float, Integer, List, Unicode, default, validate

from astrokit import env as names
from astrokit_spawner.environment import (
    ClientTLSPaths,
    StoreSettings,
    cluster_environment,
    notebook_cluster_environment,
    store_environment,
)
from astrokit_spawner.options import ProfilesMixin
from astrokit_spawner.tls import make_credentials

from . import manifests
from .manifests import DASK_GROUP, DASK_PLURAL, DASK_VERSION

__all__ = ["AstroKitKubeSpawner"]

_RETRYABLE = {429, 500, 502, 503, 504}


async def _create_cluster_hook(spawner: AstroKitKubeSpawner, pod: dict[str, Any]) -> None:
    """Default ``after_pod_created_hook``: create the server's cluster, owned by ``pod``."""
    await spawner.create_dask_resources(pod)


class AstroKitKubeSpawner(ProfilesMixin, KubeSpawner):
    """A KubeSpawner whose every server owns a Dask cluster sized by an AstroKit profile.

    Select it with ``c.JupyterHub.spawner_class = "astrokit-kubernetes"``. All of
    KubeSpawner's configuration applies (``c.KubeSpawner.*`` too); profiles and caps are
    ``c.ProfilesMixin.*`` as for the local backend. KubeSpawner's own ``profile_list`` is
    not used: AstroKit's profiles replace it.
    """

    # --- the store (same names as StoreSettings) -----------------------------------------
    store_url = Unicode(
        "",
        help="""Root URL of the object store (``s3://bucket`` or ``file:///...``) handed to
        notebooks and Dask workers as ASTROKIT_STORE_URL; each user's prefix is
        ``<root>/users/<name>`` and the read-only survey area ``<root>/shared``. Empty: no
        store variables are set.""",
    ).tag(config=True)
    s3_endpoint = Unicode("", help="S3 endpoint URL (MinIO, Ceph RGW...); empty means AWS.").tag(
        config=True
    )
    s3_anon = Bool(False, help="Anonymous S3 access (public buckets).").tag(config=True)
    aws_access_key_id = Unicode(
        "",
        help="""S3 access key handed to the notebook and the workers. Workers receive it
        through a per-server Secret (``envFrom``), never in the DaskCluster's spec. Prefer
        ``dask_env_from_secrets`` plus ``singleuser.extraEnv`` secretKeyRefs in production.""",
    ).tag(config=True)
    aws_secret_access_key = Unicode("", help="S3 secret key (see aws_access_key_id).").tag(
        config=True
    )
    model_url = Unicode("", help="Default photo-z checkpoint URL (ASTROKIT_MODEL_URL).").tag(
        config=True
    )

    # --- the cluster -----------------------------------------------------------------------
    dask_scheduler_cpu = Float(
        0.5, help="CPU request and limit of each server's Dask scheduler, in cores."
    ).tag(config=True)
    dask_scheduler_memory = ByteSpecification(
        "1G", help="Memory request and limit of each server's Dask scheduler."
    ).tag(config=True)
    dask_cluster_start_timeout = Integer(
        300,
        help="""Seconds to wait, once the notebook pod runs, for the dask-kubernetes
        operator to report the server's DaskCluster Running (scheduler up). The spawn fails
        with a message naming the cluster and its last phase after that.""",
    ).tag(config=True)
    dask_env_from_secrets = List(
        Unicode(),
        help="""Names of existing Secrets (in the server's namespace) whose keys become
        environment variables of the scheduler and workers, e.g. the store credentials an
        administrator created. Added after the per-server Secret, so they take precedence.""",
    ).tag(config=True)
    dask_tls = Bool(
        True,
        help="""Encrypt and authenticate the Dask comm with a CA made for each server alone
        (as the local backend does): scheduler and workers get the cluster's key pair, the
        notebook the client's, from two Secrets owned by the pod; the CA's key is never
        stored. A process without them cannot connect. False: plain TCP, and only the
        NetworkPolicy separates users.""",
    ).tag(config=True)
    dask_network_policy = Bool(
        True,
        help="""Create a NetworkPolicy per server admitting connections to its scheduler and
        workers only from the cluster itself and the server's notebook pod. Without it any
        pod in the namespace can submit work to a user's cluster.""",
    ).tag(config=True)
    dask_operator_namespace = Unicode(
        "dask-operator",
        help="""Namespace of the dask-kubernetes operator, admitted by the per-server
        NetworkPolicy (the operator calls the scheduler to retire workers). Empty: none.""",
    ).tag(config=True)
    notebook_rbac = Bool(
        True,
        help="""Give each notebook pod its own ServiceAccount with read-only access to its own
        DaskCluster (in per-user namespaces also to its pods, logs and services). It can
        neither create nor scale clusters, so profile caps cannot be bypassed. False: the pod
        runs with KubeSpawner's ``service_account`` setting.""",
    ).tag(config=True)

    _progress: list[dict[str, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._progress = []

    # --- hooks and names ------------------------------------------------------------------
    @default("after_pod_created_hook")
    def _default_after_pod_created_hook(self) -> Callable[..., Awaitable[None]]:
        return _create_cluster_hook

    @validate("after_pod_created_hook")
    def _chain_after_pod_created_hook(self, proposal: dict[str, Any]) -> Any:
        # The cluster needs the pod's uid, which only this hook receives; an admin's own
        # hook must not silently switch cluster creation off, so it runs after ours.
        hook = proposal["value"]
        if hook is None or hook is _create_cluster_hook or getattr(hook, "_astrokit", False):
            return hook or _create_cluster_hook

        async def chained(spawner: AstroKitKubeSpawner, pod: dict[str, Any]) -> None:
            await _create_cluster_hook(spawner, pod)
            await maybe_future(hook(spawner, pod))

        chained._astrokit = True  # type: ignore[attr-defined]
        return chained

    @property
    def dask_cluster_name(self) -> str:
        """Name of this server's DaskCluster, derived from the pod name.

        KubeSpawner keeps ``pod_name`` in the hub's state, so after a hub restart (or a change
        of ``pod_name_template``) this still names the running server's cluster.
        """
        return manifests.cluster_name_for(self.pod_name)

    @property
    def _env_secret_name(self) -> str:
        return f"{self.dask_cluster_name}-env"

    @property
    def _rbac_name(self) -> str:
        return self.pod_name

    @property
    def _tls_secret_names(self) -> tuple[str, str]:
        return f"{self.dask_cluster_name}-tls", f"{self.dask_cluster_name}-tls-nb"

    def _dask_labels(self) -> dict[str, str]:
        return {
            "hub.jupyter.org/username": safe_slug(self.user.name),
            "hub.jupyter.org/servername": safe_slug(self.name or "default"),
            "app.kubernetes.io/component": "dask-cluster",
        }

    def _note(self, message: str, progress: int | None = None) -> None:
        event: dict[str, Any] = {"message": message}
        if progress is not None:
            event["progress"] = progress
        self._progress.append(event)
        self.log.info("%s: %s", self.pod_name, message)

    # --- environment ------------------------------------------------------------------------
    def _store_env(self) -> dict[str, str]:
        if not self.store_url:
            return {}
        settings = StoreSettings(
            store_url=self.store_url,
            s3_endpoint=self.s3_endpoint,
            s3_anon=self.s3_anon,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            model_url=self.model_url,
        )
        return store_environment(settings, self.user.name)

    def get_env(self) -> dict[str, Any]:
        """KubeSpawner's environment plus the store and the cluster's address and dashboard."""
        env = super().get_env()
        env.update(self._store_env())
        profile = self.astrokit_profile
        if profile is None:
            return env
        cluster, ns = self.dask_cluster_name, self.namespace
        address = manifests.scheduler_address(cluster, ns, tls=self.dask_tls)
        dashboard = manifests.dashboard_url(
            self.server.base_url if self.server else f"/user/{self.user.name}/", cluster, ns
        )
        if self.dask_tls:
            mount = manifests.TLS_MOUNT
            tls = ClientTLSPaths(
                ca_file=f"{mount}/{manifests.TLS_CA}",
                client_cert=f"{mount}/{manifests.TLS_CLIENT_CERT}",
                client_key=f"{mount}/{manifests.TLS_CLIENT_KEY}",
            )
            env.update(
                notebook_cluster_environment(
                    profile=profile, scheduler_address=address, tls=tls, dashboard_url=dashboard
                )
            )
        else:
            env.update(
                {
                    names.SCHEDULER_ADDRESS: address,
                    names.DASK_SCHEDULER_ADDRESS: address,
                    names.N_WORKERS: str(profile.n_workers),
                    names.PROFILE: profile.name,
                    names.DASHBOARD_URL: dashboard,
                }
            )
        # Dask fills {host}/{port} from the scheduler it is connected to: right for the
        # scheduler Service here and for a LocalCluster the user starts alike.
        env[names.DASK_DASHBOARD_LINK] = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{host}:{port}/status"
        return env

    # --- spawn ------------------------------------------------------------------------------
    async def load_user_options(self) -> None:
        """Resolve the profile and prepare what must exist before the pod (KubeSpawner's
        ``_start`` calls this first).

        Raises
        ------
        SpawnException
            When the request is malformed or over the user's caps (HTTP 400).
        """
        self._progress = []
        profile = self.resolve_user_profile()
        self.cpu_limit = profile.notebook_cpu
        self.mem_limit = profile.notebook_memory
        # A guarantee above the limit is rejected by the API server; keep the admin's
        # (smaller) guarantee, which lets idle notebooks pack densely.
        if self.cpu_guarantee is not None and self.cpu_guarantee > profile.notebook_cpu:
            self.cpu_guarantee = profile.notebook_cpu
        if self.mem_guarantee is not None and self.mem_guarantee > profile.notebook_memory:
            self.mem_guarantee = profile.notebook_memory
        self.extra_labels = {**self.extra_labels, manifests.CLUSTER_LABEL: self.dask_cluster_name}
        self._note(f"Profile {profile.display_name}: {profile.summary()}", 5)
        if self.enable_user_namespaces:
            await self._ensure_namespace()
        if self.notebook_rbac:
            await self._create_rbac()
        if self.dask_tls:
            await self._create_tls_secrets()

    async def _start(self) -> str:
        try:
            url = await super()._start()
            await self._wait_for_cluster()
        except BaseException as exc:
            # Whatever failed (a refused request, the RBAC or TLS objects made before the
            # pod, the pod, the cluster), leave nothing behind; deleting what was never
            # created is a harmless 404.
            if not (isinstance(exc, SpawnException) and getattr(exc, "reason", "") == "profile"):
                await asyncio.shield(self.stop(now=True))
            raise
        return url

    async def _call(self, what: str, make_request: Callable[[], Awaitable[Any]]) -> Any:
        """One API request with retries on transient errors (capped backoff, total deadline)."""
        deadline = time.monotonic() + self.k8s_api_request_retry_timeout
        delay = 0.1
        while True:
            try:
                return await asyncio.wait_for(make_request(), self.k8s_api_request_timeout)
            except ApiException as exc:
                if exc.status not in _RETRYABLE or time.monotonic() + delay > deadline:
                    raise
                self.log.warning("%s: HTTP %s, retrying in %.1fs", what, exc.status, delay)
            except TimeoutError:
                if time.monotonic() + delay > deadline:
                    raise
                self.log.warning("%s: timed out, retrying in %.1fs", what, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _api_error(self, exc: ApiException, what: str) -> SpawnException:
        if exc.status == 403:
            message = (
                f"{what} was refused (HTTP 403): the hub's ServiceAccount lacks a permission; "
                "apply deploy/kubernetes/rbac.yaml"
            )
        else:
            message = f"{what} failed: HTTP {exc.status} {exc.reason}"
        return SpawnException(message, reason="kubernetes", status_code=500)

    async def _create_rbac(self) -> None:
        rbac = shared_client("RbacAuthorizationV1Api")
        objects = manifests.notebook_rbac_manifests(
            name=self._rbac_name,
            namespace=self.namespace,
            cluster_name=self.dask_cluster_name,
            per_user_namespace=self.enable_user_namespaces,
            labels=self._dask_labels(),
        )
        creators = {
            "ServiceAccount": lambda o: self.api.create_namespaced_service_account(
                self.namespace, o
            ),
            "Role": lambda o: rbac.create_namespaced_role(self.namespace, o),
            "RoleBinding": lambda o: rbac.create_namespaced_role_binding(self.namespace, o),
        }
        for obj in objects:
            kind = obj["kind"]
            try:
                await self._call(f"create {kind}", lambda o=obj, k=kind: creators[k](o))
            except ApiException as exc:
                if exc.status != 409:  # left from an earlier server: same content, reuse
                    raise self._api_error(
                        exc, f"creating {kind} {obj['metadata']['name']}"
                    ) from exc
        self.service_account = self._rbac_name
        self.automount_service_account_token = True

    async def _create_tls_secrets(self) -> None:
        """Fresh credentials for this server, as two Secrets, mounted in the notebook.

        They must exist before the pod (the kubelet mounts them at start), so they get their
        ownerReference once the pod exists (:meth:`create_dask_resources`).
        """
        with tempfile.TemporaryDirectory(prefix="astrokit-tls-") as tmp:
            creds = make_credentials(Path(tmp) / "creds", server_id=self.pod_name)
            pem = {
                path.name: path.read_bytes()
                for path in (
                    creds.ca_file,
                    creds.cluster_cert,
                    creds.cluster_key,
                    creds.client_cert,
                    creds.client_key,
                )
            }
        for secret in manifests.tls_secret_manifests(
            cluster_name=self.dask_cluster_name,
            namespace=self.namespace,
            pem=pem,
            labels=self._dask_labels(),
        ):
            name = secret["metadata"]["name"]
            await self._replace_or_create(
                "Secret",
                secret,
                create=lambda s=secret: self.api.create_namespaced_secret(self.namespace, s),
                delete=lambda n=name: self.api.delete_namespaced_secret(n, self.namespace),
            )
        volume_name = "astrokit-dask-tls"
        self.volumes = [v for v in self.volumes if v.get("name") != volume_name] + [
            {"name": volume_name, "secret": {"secretName": self._tls_secret_names[1]}}
        ]
        self.volume_mounts = [m for m in self.volume_mounts if m.get("name") != volume_name] + [
            {"name": volume_name, "mountPath": manifests.TLS_MOUNT, "readOnly": True}
        ]

    async def create_dask_resources(self, pod: dict[str, Any]) -> None:
        """Create the env Secret, NetworkPolicy and DaskCluster owned by ``pod``.

        Called with the pod as the API server returned it (it carries the ``uid``).

        Raises
        ------
        SpawnException
            When the DaskCluster kind is not installed, the hub lacks permissions, or the API
            server rejects the cluster.
        """
        profile = self.astrokit_profile
        if profile is None:  # load_user_options always runs first in _start
            raise SpawnException("no profile resolved before the pod was created", reason="bug")
        owner = manifests.owner_reference(self.pod_name, pod["metadata"]["uid"])
        labels = self._dask_labels()
        cluster = self.dask_cluster_name
        secret = manifests.env_secret_manifest(
            name=self._env_secret_name,
            namespace=self.namespace,
            data=self._store_env(),
            owner=owner,
            labels=labels,
        )
        cluster_manifest = manifests.dask_cluster_manifest(
            name=cluster,
            namespace=self.namespace,
            profile=profile,
            image=self.image,
            env={
                **cluster_environment({}, threads_per_worker=profile.threads_per_worker),
                names.PROFILE: profile.name,
            },
            env_secret=self._env_secret_name,
            owner=owner,
            labels=labels,
            scheduler_cpu=self.dask_scheduler_cpu,
            scheduler_memory=int(self.dask_scheduler_memory),
            image_pull_policy=self.image_pull_policy,
        )
        if self.dask_tls:
            cluster_manifest = manifests.with_tls(
                cluster_manifest,
                secret_name=self._tls_secret_names[0],
                scheduler_address=manifests.scheduler_address(cluster, self.namespace, tls=True),
            )
            # Created before the pod, owned by it from now on (garbage collection).
            for name in self._tls_secret_names:
                try:
                    await self._call(
                        f"own Secret {name}",
                        lambda n=name: self.api.patch_namespaced_secret(
                            n, self.namespace, {"metadata": {"ownerReferences": [owner]}}
                        ),
                    )
                except ApiException as exc:
                    raise self._api_error(exc, f"setting the owner of Secret {name}") from exc
        for container in (
            cluster_manifest["spec"]["worker"]["spec"]["containers"][0],
            cluster_manifest["spec"]["scheduler"]["spec"]["containers"][0],
        ):
            container["envFrom"] += [{"secretRef": {"name": n}} for n in self.dask_env_from_secrets]
        await self._replace_or_create(
            "Secret",
            secret,
            create=lambda: self.api.create_namespaced_secret(self.namespace, secret),
            delete=lambda: self.api.delete_namespaced_secret(
                secret["metadata"]["name"], self.namespace
            ),
        )
        if self.dask_network_policy:
            net = shared_client("NetworkingV1Api")
            policy = manifests.network_policy_manifest(
                name=cluster,
                namespace=self.namespace,
                cluster_name=cluster,
                operator_namespace=self.dask_operator_namespace or None,
                owner=owner,
                labels=labels,
            )
            await self._replace_or_create(
                "NetworkPolicy",
                policy,
                create=lambda: net.create_namespaced_network_policy(self.namespace, policy),
                delete=lambda: net.delete_namespaced_network_policy(cluster, self.namespace),
            )
        custom = shared_client("CustomObjectsApi")
        await self._replace_or_create(
            "DaskCluster",
            cluster_manifest,
            create=lambda: custom.create_namespaced_custom_object(
                DASK_GROUP, DASK_VERSION, self.namespace, DASK_PLURAL, cluster_manifest
            ),
            delete=lambda: custom.delete_namespaced_custom_object(
                DASK_GROUP, DASK_VERSION, self.namespace, DASK_PLURAL, cluster
            ),
        )
        self._note(f"Dask cluster {cluster}: {profile.n_workers} workers requested", 40)

    async def _replace_or_create(
        self,
        kind: str,
        manifest: dict[str, Any],
        *,
        create: Callable[[], Awaitable[Any]],
        delete: Callable[[], Awaitable[Any]],
    ) -> None:
        """Create; an object of the same name left from an earlier pod is deleted first.

        A leftover normally belongs to a pod that is gone (the collector had not got to it
        yet) or to one a crashed hub lost track of; it must not be adopted, since its
        ownerReference and sizes are the old server's.

        Raises
        ------
        SpawnException
            On any other refusal, with a message naming the object and the likely cause.
        """
        name = manifest["metadata"]["name"]
        for attempt in range(2):
            try:
                await self._call(f"create {kind} {name}", create)
                return
            except ApiException as exc:
                if exc.status == 409 and not attempt:
                    pass  # replace the leftover below
                elif exc.status == 404 and kind == "DaskCluster":
                    raise SpawnException(
                        "the DaskCluster resource (kubernetes.dask.org/v1) is not installed in "
                        "this Kubernetes cluster: install the dask-kubernetes operator "
                        "(deploy/kubernetes/README.md)",
                        reason="dask-operator",
                        status_code=500,
                    ) from exc
                elif exc.status == 422:
                    raise SpawnException(
                        f"the API server rejected {kind} {name}: {exc.body or exc.reason}",
                        reason="kubernetes",
                        status_code=500,
                    ) from exc
                else:
                    raise self._api_error(exc, f"creating {kind} {name}") from exc
            self.log.warning("replacing leftover %s %s/%s", kind, self.namespace, name)
            try:
                await self._call(f"delete {kind} {name}", delete)
            except ApiException as exc:
                if exc.status != 404:
                    raise self._api_error(exc, f"deleting leftover {kind} {name}") from exc

    async def _wait_for_cluster(self) -> None:
        """Wait for the operator to report the DaskCluster Running (scheduler ready)."""
        custom = shared_client("CustomObjectsApi")
        cluster = self.dask_cluster_name
        deadline = time.monotonic() + self.dask_cluster_start_timeout
        phase, delay = None, 0.1
        while True:
            try:
                obj = await self._call(
                    f"get DaskCluster {cluster}",
                    lambda: custom.get_namespaced_custom_object(
                        DASK_GROUP, DASK_VERSION, self.namespace, DASK_PLURAL, cluster
                    ),
                )
            except ApiException as exc:
                if exc.status == 404:
                    raise SpawnException(
                        f"Dask cluster {cluster} disappeared while starting",
                        reason="dask-cluster",
                        status_code=500,
                    ) from exc
                raise self._api_error(exc, f"reading DaskCluster {cluster}") from exc
            new_phase = (obj.get("status") or {}).get("phase")
            if new_phase != phase:
                phase = new_phase
                self._note(f"Dask cluster {cluster}: {phase or 'waiting for the operator'}", 80)
            if phase == "Running":
                return
            if time.monotonic() > deadline:
                raise SpawnException(
                    f"Dask cluster {cluster} did not start within "
                    f"{self.dask_cluster_start_timeout} s (last phase: {phase or 'none'}); "
                    "is the dask-kubernetes operator running?",
                    reason="dask-cluster",
                    status_code=500,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # --- stop --------------------------------------------------------------------------------
    async def delete_dask_resources(self) -> None:
        """Delete the cluster and its companions (404 is fine: already gone)."""
        custom = shared_client("CustomObjectsApi")
        net = shared_client("NetworkingV1Api")
        rbac = shared_client("RbacAuthorizationV1Api")
        cluster, ns = self.dask_cluster_name, self.namespace
        deletions: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            (
                f"DaskCluster {cluster}",
                lambda: custom.delete_namespaced_custom_object(
                    DASK_GROUP, DASK_VERSION, ns, DASK_PLURAL, cluster
                ),
            ),
            (
                f"Secret {self._env_secret_name}",
                lambda: self.api.delete_namespaced_secret(self._env_secret_name, ns),
            ),
        ]
        # Regardless of the current dask_tls / dask_network_policy settings: the server may
        # have been started under others, and these names are ours alone.
        for secret in self._tls_secret_names:
            deletions.append(
                (f"Secret {secret}", lambda n=secret: self.api.delete_namespaced_secret(n, ns))
            )
        deletions.append(
            (f"NetworkPolicy {cluster}", lambda: net.delete_namespaced_network_policy(cluster, ns))
        )
        # Only when enabled: with notebook_rbac off, a ServiceAccount of this name would be an
        # administrator's, not ours.
        if self.notebook_rbac:
            name = self._rbac_name
            deletions += [
                (f"RoleBinding {name}", lambda: rbac.delete_namespaced_role_binding(name, ns)),
                (f"Role {name}", lambda: rbac.delete_namespaced_role(name, ns)),
                (
                    f"ServiceAccount {name}",
                    lambda: self.api.delete_namespaced_service_account(name, ns),
                ),
            ]
        for what, request in deletions:
            try:
                await self._call(f"delete {what}", request)
            except ApiException as exc:
                if exc.status != 404:
                    # Keep going: the pod's deletion below still lets the garbage
                    # collector remove everything that has an ownerReference to it.
                    self.log.error("could not delete %s: HTTP %s %s", what, exc.status, exc.reason)

    async def stop(self, now: bool = False) -> None:
        """Delete the server's cluster and companions, then the pod (KubeSpawner)."""
        await self.delete_dask_resources()
        await super().stop(now=now)

    # --- progress ----------------------------------------------------------------------------
    async def progress(self):  # type: ignore[override]
        """Pod events (as KubeSpawner reports them) interleaved with the cluster's steps.

        Never raises: a failure to read events ends the stream with a message instead.
        """
        sent_notes = sent_events = 0
        progress = 0
        try:
            if self.events_enabled:
                await self._start_watching_events()
            while True:
                done = self._start_future is not None and self._start_future.done()
                events = self.events if self.events_enabled else []
                for event in events[sent_events:]:
                    sent_events += 1
                    progress = min(max(progress, 10) + 5, 95)
                    yield {
                        "progress": progress,
                        "raw_event": event,
                        "message": "{} [{}] {}".format(
                            event["lastTimestamp"] or event["eventTime"],
                            event["type"],
                            event["message"],
                        ),
                    }
                # Our own steps after the pod's events seen in the same round: the last
                # ones (the cluster's phase) are what the spawn waits for.
                for note in self._progress[sent_notes:]:
                    sent_notes += 1
                    progress = max(progress, note.get("progress", progress))
                    yield {**note, "progress": progress}
                if done:
                    return
                await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.exception("progress for %s failed", self.pod_name)
            yield {"progress": progress, "message": f"(progress unavailable: {exc})"}
