"""An in-memory Kubernetes API server over HTTP on 127.0.0.1, for testing without a cluster.

It implements the part of the API server's semantics that KubeSpawner and the AstroKit spawner
use, behind the real REST paths, so the real ``kubernetes_asyncio`` client (and through it
KubeSpawner's unmodified code: reflectors, watches, retries) talks to it:

* create / get / list / replace / merge-patch / delete of namespaced and cluster-scoped
  objects (pods, services, secrets, events, service accounts, namespaces, roles, role
  bindings, network policies and the ``kubernetes.dask.org/v1`` DaskCluster custom resource);
* ``metadata.uid``, ``resourceVersion`` (one global counter), ``creationTimestamp``;
  ``409 AlreadyExists`` / ``409 Conflict`` (stale resourceVersion), ``404 NotFound``
  (also for a missing namespace, and for the custom resource when its CRD is not installed),
  ``422 Invalid`` (DaskCluster failing the CRD's openAPIV3Schema, as the real server's
  structural-schema validation does);
* list with equality label selectors and field selectors, and ``watch=true`` streams
  (ADDED/MODIFIED/DELETED from a resourceVersion, ``timeoutSeconds``);
* garbage collection: once every owner named in an object's ``ownerReferences`` is gone,
  the object is deleted (asynchronously, as the real collector does), recursively; deleting
  a namespace deletes what is in it.

Two controllers stand in for the parts of a cluster that are not the API server: a
*kubelet* that moves new pods from Pending to Running (with a pod IP, ready container statuses
and Events), and an optional *operator* that, like dask-kubernetes' controller, creates the
scheduler Service owned by a new DaskCluster and sets ``status.phase`` to ``Running``. Tests
switch them off or drive them (``terminate_pod``) to produce the situations they check.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import itertools
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from aiohttp import web

log = logging.getLogger(__name__)

# (api prefix, plural) -> (kind, namespaced)
RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("api/v1", "pods"): ("Pod", True),
    ("api/v1", "services"): ("Service", True),
    ("api/v1", "secrets"): ("Secret", True),
    ("api/v1", "events"): ("Event", True),
    ("api/v1", "serviceaccounts"): ("ServiceAccount", True),
    ("api/v1", "persistentvolumeclaims"): ("PersistentVolumeClaim", True),
    ("api/v1", "namespaces"): ("Namespace", False),
    ("apis/rbac.authorization.k8s.io/v1", "roles"): ("Role", True),
    ("apis/rbac.authorization.k8s.io/v1", "rolebindings"): ("RoleBinding", True),
    ("apis/networking.k8s.io/v1", "networkpolicies"): ("NetworkPolicy", True),
    ("apis/kubernetes.dask.org/v1", "daskclusters"): ("DaskCluster", True),
}
DASK = ("apis/kubernetes.dask.org/v1", "daskclusters")


@functools.cache
def daskcluster_crd_schema() -> dict[str, Any]:
    """The DaskCluster openAPIV3Schema shipped (fully resolved) in dask-kubernetes' Helm chart."""
    import dask_kubernetes

    path = (
        Path(dask_kubernetes.__file__).parent
        / "operator/deployment/helm/dask-kubernetes-operator/crds/daskcluster.yaml"
    )
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@functools.cache
def daskcluster_validator() -> jsonschema.protocols.Validator:
    """A reusable validator for :func:`daskcluster_crd_schema`.

    ``jsonschema.validate`` re-checks the (6,000-line) schema itself on every call, which
    takes seconds; the API server, like this validator, compiles it once.
    """
    schema = daskcluster_crd_schema()
    return jsonschema.validators.validator_for(schema)(schema)


class ApiError(Exception):
    """An API error, returned to the client as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass
class Change:
    """One entry of the change log that watches replay."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: tuple[str, str]
    obj: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lookup(obj: dict[str, Any], dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _match_labels(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _match_fields(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        actual = _lookup(obj, key.strip())
        equal = actual is not None and str(actual) == value.strip()
        if equal == negate:
            return False
    return True


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what strategic merge does for the fields we patch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


@dataclass
class FakeKubernetes:
    """The object store, change log and controllers behind the HTTP front end.

    Parameters
    ----------
    namespaces
        Namespaces that exist from the start.
    dask_crd
        Whether the DaskCluster CRD is installed (False: its paths answer 404).
    kubelet_delay
        Seconds before the kubelet starts a new pod; ``None`` leaves pods Pending.
    operator_delay
        Seconds before the operator marks a new DaskCluster Running; ``None``: no operator.
    """

    namespaces: Iterable[str] = ("default",)
    dask_crd: bool = True
    kubelet_delay: float | None = 0.05
    operator_delay: float | None = 0.05
    url: str = ""  # set by whoever serves it (FakeApiServer.start's result)
    #: (resource, verb) pairs answered 403 Forbidden, as RBAC would for a missing rule
    forbidden: set[tuple[tuple[str, str], str]] = field(default_factory=set)
    objects: dict[tuple[tuple[str, str], str, str], dict[str, Any]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    requests_with_watch: list[tuple[str, str, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rv = itertools.count(1)
        self.resource_version = 0
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ips = itertools.count(10)
        for ns in self.namespaces:
            self.create(("api/v1", "namespaces"), "", {"metadata": {"name": ns}})

    # --- store primitives ---------------------------------------------------------------
    def _bump(self, kind: str, resource: tuple[str, str], obj: dict[str, Any]) -> None:
        self.resource_version = next(self._rv)
        if kind != "DELETED":
            obj["metadata"]["resourceVersion"] = str(self.resource_version)
        self.changes.append(Change(self.resource_version, kind, resource, copy.deepcopy(obj)))
        self._spawn(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check_resource(self, resource: tuple[str, str]) -> tuple[str, bool]:
        if resource not in RESOURCES or (resource == DASK and not self.dask_crd):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return RESOURCES[resource]

    def get(self, resource: tuple[str, str], namespace: str, name: str) -> dict[str, Any]:
        """Return a copy of one object, or raise a 404 ApiError."""
        self._check_resource(resource)
        obj = self.objects.get((resource, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource[1]} "{name}" not found')
        return copy.deepcopy(obj)

    def list(
        self,
        resource: tuple[str, str],
        namespace: str | None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        """Objects of one resource, in ``namespace`` (None: all), matching the selectors."""
        self._check_resource(resource)
        return [
            copy.deepcopy(obj)
            for (res, ns, _), obj in sorted(self.objects.items(), key=lambda kv: kv[0][1:])
            if res == resource
            and (namespace is None or ns == namespace)
            and _match_labels(obj, label_selector)
            and _match_fields(obj, field_selector)
        ]

    def create(
        self, resource: tuple[str, str], namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Create an object (the API server's POST), returning the stored copy."""
        kind, namespaced = self._check_resource(resource)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or (
            meta["generateName"] + uuid.uuid4().hex[:5] if meta.get("generateName") else None
        )
        if not name:
            raise ApiError(422, "Invalid", f"{kind}: metadata.name: Required value")
        if obj.get("kind", kind) != kind:
            raise ApiError(400, "BadRequest", f"kind {obj['kind']!r} posted to {resource[1]}")
        if namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the namespace of the provided object ({meta['namespace']}) does not "
                    f"match the namespace sent on the request ({namespace})",
                )
            if (("api/v1", "namespaces"), "", namespace) not in self.objects:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
            meta["namespace"] = namespace
        else:
            namespace = ""
        key = (resource, namespace, name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{resource[1]} "{name}" already exists')
        if resource == DASK:
            self._validate_daskcluster(obj)
        api_version = resource[0].split("/", 1)[1] if resource[0] != "api/v1" else "v1"
        obj["apiVersion"], obj["kind"] = api_version, kind
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=_now())
        if kind == "Pod":
            obj["status"] = {"phase": "Pending", "conditions": [], "podIP": None}
            if self.kubelet_delay is not None:
                self._spawn(self._kubelet_start(namespace, name, meta["uid"]))
        if kind == "DaskCluster" and self.operator_delay is not None:
            self._spawn(self._operator_reconcile(namespace, name, meta["uid"]))
        self.objects[key] = obj
        self._bump("ADDED", resource, obj)
        return copy.deepcopy(obj)

    def replace(
        self,
        resource: tuple[str, str],
        namespace: str,
        name: str,
        body: dict[str, Any],
        *,
        status_only: bool = False,
    ) -> dict[str, Any]:
        """PUT semantics: optimistic concurrency on ``metadata.resourceVersion``."""
        current = self.objects.get((resource, namespace, name))
        if current is None:
            raise ApiError(404, "NotFound", f'{resource[1]} "{name}" not found')
        sent_rv = body.get("metadata", {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource[1]} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        if status_only:
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(body.get("status", {}))
        else:
            new = copy.deepcopy(body)
            new["metadata"] = {**current["metadata"], **body.get("metadata", {})}
            new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
            new.setdefault("status", current.get("status"))
            if resource == DASK:
                self._validate_daskcluster(new)
        self.objects[(resource, namespace, name)] = new
        self._bump("MODIFIED", resource, new)
        return copy.deepcopy(new)

    def patch(
        self,
        resource: tuple[str, str],
        namespace: str,
        name: str,
        patch: dict[str, Any],
        *,
        status_only: bool = False,
    ) -> dict[str, Any]:
        """Merge-patch an object (or only its status)."""
        current = self.get(resource, namespace, name)
        if status_only:
            patch = {"status": patch.get("status", {})}
        merged = _merge_patch(current, patch)
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.replace(resource, namespace, name, merged)

    def delete(self, resource: tuple[str, str], namespace: str, name: str) -> dict[str, Any]:
        """Delete an object now; its dependents are garbage-collected shortly after."""
        self._check_resource(resource)
        obj = self.objects.pop((resource, namespace, name), None)
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource[1]} "{name}" not found')
        obj["metadata"]["deletionTimestamp"] = _now()
        self._bump("DELETED", resource, obj)
        if obj["kind"] == "Namespace":
            for key in [k for k in self.objects if k[1] == name]:
                self.delete(key[0], key[1], key[2])
        # The real collector is a separate controller: dependents disappear *after* the
        # owner's DELETE returns, so clients must poll for it, and so must our tests.
        self._spawn(self._collect_garbage())
        return copy.deepcopy(obj)

    async def _collect_garbage(self) -> None:
        await asyncio.sleep(0.01)
        while True:
            alive = {obj["metadata"]["uid"] for obj in self.objects.values()}
            orphans = [
                key
                for key, obj in self.objects.items()
                if (refs := obj["metadata"].get("ownerReferences"))
                and all(ref["uid"] not in alive for ref in refs)
            ]
            if not orphans:
                return
            for key in orphans:
                log.debug("garbage collector deletes %s %s/%s", key[0][1], key[1], key[2])
                with contextlib.suppress(ApiError):
                    self.delete(*key)

    def _validate_daskcluster(self, obj: dict[str, Any]) -> None:
        try:
            daskcluster_validator().validate(obj)
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path) or "<root>"
            raise ApiError(
                422,
                "Invalid",
                f"DaskCluster {obj['metadata'].get('name')!r}: {where}: {exc.message}",
            ) from exc

    # --- controllers ----------------------------------------------------------------------
    def _event(self, namespace: str, pod: str, reason: str, message: str) -> None:
        self.create(
            ("api/v1", "events"),
            namespace,
            {
                "metadata": {"generateName": f"{pod}."},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace},
                "reason": reason,
                "message": message,
                "type": "Normal",
                "lastTimestamp": _now(),
                "eventTime": None,
            },
        )

    async def _kubelet_start(self, namespace: str, name: str, uid: str) -> None:
        await asyncio.sleep(self.kubelet_delay or 0)
        pod = self.objects.get((("api/v1", "pods"), namespace, name))
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        self._event(namespace, name, "Scheduled", f"Successfully assigned {namespace}/{name}")
        statuses = [
            {
                "name": c["name"],
                "ready": True,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": "",
                "state": {"running": {"startedAt": _now()}},
            }
            for c in pod["spec"]["containers"]
        ]
        self.patch(
            ("api/v1", "pods"),
            namespace,
            name,
            {
                "status": {
                    "phase": "Running",
                    "podIP": f"10.0.0.{next(self._ips)}",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": statuses,
                }
            },
            status_only=True,
        )
        self._event(namespace, name, "Started", "Started container notebook")

    def terminate_pod(self, namespace: str, name: str, exit_code: int = 0) -> None:
        """Play the kubelet seeing the pod's containers exit with ``exit_code``."""
        pod = self.get(("api/v1", "pods"), namespace, name)
        statuses = [
            {**status, "ready": False, "state": {"terminated": {"exitCode": exit_code}}}
            for status in pod["status"].get("containerStatuses", [])
        ]
        phase = "Succeeded" if exit_code == 0 else "Failed"
        self.patch(
            ("api/v1", "pods"),
            namespace,
            name,
            {"status": {"phase": phase, "containerStatuses": statuses}},
            status_only=True,
        )

    async def _operator_reconcile(self, namespace: str, name: str, uid: str) -> None:
        await asyncio.sleep(self.operator_delay or 0)
        if (DASK, namespace, name) not in self.objects:
            return
        owner = {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskCluster",
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        spec = self.objects[(DASK, namespace, name)]["spec"]["scheduler"]["service"]
        with contextlib.suppress(ApiError):
            self.create(
                ("api/v1", "services"),
                namespace,
                {
                    "metadata": {
                        "name": f"{name}-scheduler",
                        "labels": {"dask.org/cluster-name": name},
                        "ownerReferences": [owner],
                    },
                    "spec": spec,
                },
            )
        with contextlib.suppress(ApiError):
            self.patch(DASK, namespace, name, {"status": {"phase": "Running"}}, status_only=True)

    # --- watch ---------------------------------------------------------------------------
    async def wait_changed(self, timeout: float) -> None:
        """Wait until something changes or ``timeout`` seconds pass."""
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def close(self) -> None:
        """Cancel the controllers' pending work."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _parse_path(path: str) -> tuple[tuple[str, str], str | None, str | None, str | None]:
    """``/api/v1/namespaces/ns/pods/name/status`` -> (resource, namespace, name, subresource)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        prefix, rest = "/".join(parts[:2]), parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        prefix, rest = "/".join(parts[:3]), parts[3:]
    else:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, plural, tail = rest[1], rest[2], rest[3:]
        name = tail[0] if tail else None
        sub = tail[1] if len(tail) > 1 else None
        return (prefix, plural), namespace, name, sub
    if 1 <= len(rest) <= 2:
        return (prefix, rest[0]), None, (rest[1] if len(rest) == 2 else None), None
    raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")


class FakeApiServer:
    """Serve a :class:`FakeKubernetes` over HTTP on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, kube: FakeKubernetes) -> None:
        self.kube = kube
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # port 0: the OS picked one
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        await self.kube.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kube = self.kube
        kube.requests.append((request.method, request.path))
        watch = request.query.get("watch") in ("true", "1", "True")
        kube.requests_with_watch.append((request.method, request.path, watch))
        try:
            resource, namespace, name, sub = _parse_path(request.path)
            kind, namespaced = kube._check_resource(resource)
            if not namespaced:
                namespace = None
            query = request.query
            verb = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}.get(
                request.method, "get" if name else "list"
            )
            if (resource, verb) in kube.forbidden:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{resource[1]} is forbidden: User "system:serviceaccount:jhub:hub" '
                    f'cannot {verb} resource "{resource[1]}"',
                )
            if request.method == "GET" and name is None:
                if query.get("watch") in ("true", "1", "True"):
                    return await self._watch(request, resource, namespace)
                items = kube.list(
                    resource,
                    namespace if namespaced else None,
                    query.get("labelSelector", ""),
                    query.get("fieldSelector", ""),
                )
                body = {
                    "kind": f"{kind}List",
                    "apiVersion": items[0]["apiVersion"] if items else "v1",
                    "metadata": {"resourceVersion": str(kube.resource_version)},
                    "items": items,
                }
                return web.json_response(body)
            if namespaced and namespace is None and request.method != "GET":
                raise ApiError(405, "MethodNotAllowed", "use a namespaced path")
            ns = namespace or ""
            if request.method == "GET":
                return web.json_response(kube.get(resource, ns, name))
            if request.method == "POST" and name is None:
                body = await request.json()
                return web.json_response(kube.create(resource, ns, body), status=201)
            if request.method == "DELETE" and name is not None:
                return web.json_response(kube.delete(resource, ns, name))
            if request.method == "PUT" and name is not None:
                body = await request.json()
                obj = kube.replace(resource, ns, name, body, status_only=sub == "status")
                return web.json_response(obj)
            if request.method == "PATCH" and name is not None:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ApiError(415, "UnsupportedMediaType", "only merge patches are served")
                obj = kube.patch(resource, ns, name, body, status_only=sub == "status")
                return web.json_response(obj)
            raise ApiError(405, "MethodNotAllowed", f"{request.method} {request.path}")
        except ApiError as exc:
            return web.json_response(exc.status(), status=exc.code)

    async def _watch(
        self, request: web.Request, resource: tuple[str, str], namespace: str | None
    ) -> web.StreamResponse:
        kube = self.kube
        query = request.query
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        timeout = float(query.get("timeoutSeconds", 30))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def send(kind: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": kind, "object": obj}) + "\n"
            await response.write(line.encode())

        rv = query.get("resourceVersion", "")
        if rv in ("", "0"):
            # "any version": the current state as synthetic ADDED events, then changes.
            since = kube.resource_version
            for obj in kube.list(resource, namespace, labels, fields):
                await send("ADDED", obj)
        else:
            since = int(rv)
        while True:
            for change in [c for c in kube.changes if c.rv > since]:
                since = change.rv
                obj = change.obj
                if (
                    change.resource == resource
                    and (namespace is None or obj["metadata"].get("namespace") == namespace)
                    and _match_labels(obj, labels)
                    and _match_fields(obj, fields)
                ):
                    await send(change.type, obj)
            remaining = deadline - loop.time()
            if remaining <= 0 or request.transport is None or request.transport.is_closing():
                break
            await kube.wait_changed(min(remaining, 1.0))
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response
