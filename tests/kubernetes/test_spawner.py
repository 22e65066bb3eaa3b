"""AstroKitKubeSpawner's start/poll/stop against the in-memory Kubernetes API server.

KubeSpawner's real code (reflectors, watches, retries) runs unmodified over HTTP against
``k8s_fake_api``; the fake's kubelet starts pods and its operator marks DaskClusters Running.
"""

from __future__ import annotations

import asyncio
import functools

import pytest
from helpers.polling import wait_until_async
from jupyterhub.spawner import SpawnException
from k8s_fake_api import DASK
from k8s_helpers import IMAGE, make_spawner, start_server
from k8s_schemas import validate_manifest

PODS = ("api/v1", "pods")
SECRETS = ("api/v1", "secrets")
NETPOL = ("apis/networking.k8s.io/v1", "networkpolicies")
ROLES = ("apis/rbac.authorization.k8s.io/v1", "roles")
SERVICE_ACCOUNTS = ("api/v1", "serviceaccounts")

#: The fake API server acts within milliseconds: ten seconds is a generous deadline.
eventually = functools.partial(wait_until_async, timeout=10.0)


def exists(kube, resource, namespace, name):
    return (resource, namespace, name) in kube.objects


def pod_env(pod):
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


async def test_start_poll_stop(kube):
    spawner = make_spawner(kube, user_options={"profile": "medium"})
    url = await start_server(spawner)
    assert url.startswith("http://10.0.0.") and url.endswith(":8888")

    pod = kube.get(PODS, "jhub", "jupyter-alice")
    notebook = pod["spec"]["containers"][0]
    # medium: notebook 2 CPU / 4 GiB; 3 workers x 1 thread, 2 GiB each
    assert notebook["resources"]["limits"] == {"cpu": 2.0, "memory": 4 << 30}
    assert notebook["image"] == IMAGE
    assert pod["metadata"]["labels"]["astrokit.io/dask-cluster"] == "jupyter-alice-dask"
    assert pod["spec"]["serviceAccountName"] == "jupyter-alice"
    env = pod_env(pod)
    address = "tls://jupyter-alice-dask-scheduler.jhub.svc:8786"
    assert env["ASTROKIT_SCHEDULER_ADDRESS"] == env["DASK_SCHEDULER_ADDRESS"] == address
    tls_dir = "/etc/astrokit/dask-tls"
    assert env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] == f"{tls_dir}/ca.pem"
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"] == f"{tls_dir}/client.pem"
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"] == f"{tls_dir}/client-key.pem"
    assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    assert {"name": "astrokit-dask-tls", "mountPath": tls_dir, "readOnly": True} in notebook[
        "volumeMounts"
    ]
    assert {
        "name": "astrokit-dask-tls",
        "secret": {"secretName": "jupyter-alice-dask-tls-nb"},
    } in pod["spec"]["volumes"]
    assert env["ASTROKIT_DASHBOARD_URL"] == (
        "/user/alice/proxy/jupyter-alice-dask-scheduler.jhub.svc:8787/status"
    )
    assert env["ASTROKIT_N_WORKERS"] == "3" and env["ASTROKIT_PROFILE"] == "medium"
    assert env["ASTROKIT_USER_URL"] == "s3://astrokit/users/alice"

    cluster = kube.get(DASK, "jhub", "jupyter-alice-dask")
    validate_manifest({k: cluster[k] for k in ("apiVersion", "kind", "metadata", "spec")} | {
        "metadata": {k: v for k, v in cluster["metadata"].items()
                     if k in ("name", "namespace", "labels", "ownerReferences")}})  # fmt: skip
    assert cluster["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "jupyter-alice",
            "uid": pod["metadata"]["uid"],
            "controller": False,
            "blockOwnerDeletion": True,
        }
    ]
    assert cluster["status"]["phase"] == "Running"
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert cluster["spec"]["worker"]["replicas"] == 3
    assert worker["image"] == IMAGE  # worker image = notebook image
    assert worker["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert worker["envFrom"] == [{"secretRef": {"name": "jupyter-alice-dask-env"}}]
    worker_env = {e["name"]: e["value"] for e in worker["env"]}
    assert worker_env["DASK_SCHEDULER_ADDRESS"] == address
    scheduler = cluster["spec"]["scheduler"]["spec"]["containers"][0]
    assert scheduler["args"][-2:] == ["--protocol", "tls"]
    assert cluster["spec"]["scheduler"]["spec"]["volumes"] == [
        {"name": "dask-tls", "secret": {"secretName": "jupyter-alice-dask-tls"}}
    ]
    for name in ("jupyter-alice-dask-tls", "jupyter-alice-dask-tls-nb"):
        owners = kube.get(SECRETS, "jhub", name)["metadata"]["ownerReferences"]
        assert owners[0]["uid"] == pod["metadata"]["uid"], name
    # the notebook's Secret has no cluster key, the cluster's none of the client's
    assert set(kube.get(SECRETS, "jhub", "jupyter-alice-dask-tls-nb")["stringData"]) == {
        "ca.pem",
        "client.pem",
        "client-key.pem",
    }
    # credentials travel in the owned Secret, not in the DaskCluster's spec
    assert "s3cr3t" not in str(cluster)
    secret = kube.get(SECRETS, "jhub", "jupyter-alice-dask-env")
    assert secret["stringData"]["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    assert exists(kube, NETPOL, "jhub", "jupyter-alice-dask")

    assert await spawner.poll() is None
    assert spawner.get_state()["pod_name"] == "jupyter-alice"

    await asyncio.wait_for(spawner.stop(), 30)
    assert await spawner.poll() == 1
    for resource, name in [
        (PODS, "jupyter-alice"),
        (DASK, "jupyter-alice-dask"),
        (SECRETS, "jupyter-alice-dask-env"),
        (SECRETS, "jupyter-alice-dask-tls"),
        (SECRETS, "jupyter-alice-dask-tls-nb"),
        (NETPOL, "jupyter-alice-dask"),
        (ROLES, "jupyter-alice"),
        (SERVICE_ACCOUNTS, "jupyter-alice"),
    ]:
        assert not exists(kube, resource, "jhub", name), (resource, name)


async def test_hub_restart_keeps_track_and_stop_cleans_up(kube):
    """A new spawner (hub restarted, pod template changed) finds the server from its state."""
    first = make_spawner(kube, user_options={"profile": "small"})
    await start_server(first)
    state = first.get_state()
    restarted = make_spawner(kube, pod_name_template="nb-{user_server}")
    restarted.load_state(state)
    # the hub's database keeps the server's address across restarts
    restarted.server.ip, restarted.server.port = first.server.ip, first.server.port
    assert restarted.pod_name == "jupyter-alice"
    assert await restarted.poll() is None
    await asyncio.wait_for(restarted.stop(), 30)
    leftovers = [k for k in kube.objects if k[0][1] not in ("namespaces", "events")]
    assert leftovers == []


async def test_cluster_goes_with_the_pod(kube):
    """Deleting the pod behind the hub's back: the garbage collector removes the cluster."""
    spawner = make_spawner(kube)
    await start_server(spawner)
    assert exists(kube, DASK, "jhub", "jupyter-alice-dask")
    kube.delete(PODS, "jhub", "jupyter-alice")
    await eventually(
        lambda: not exists(kube, DASK, "jhub", "jupyter-alice-dask"), what="cluster collected"
    )
    # ... and with it the operator's scheduler Service it owns (GC is transitive)
    await eventually(
        lambda: not exists(kube, ("api/v1", "services"), "jhub", "jupyter-alice-dask-scheduler"),
        what="scheduler service collected",
    )
    assert not exists(kube, SECRETS, "jhub", "jupyter-alice-dask-env")
    assert not exists(kube, SECRETS, "jhub", "jupyter-alice-dask-tls")
    assert not exists(kube, SECRETS, "jhub", "jupyter-alice-dask-tls-nb")
    assert await eventually(lambda: spawner.poll(), what="poll() non-None") == 1


async def test_plain_tcp_when_tls_is_off(kube):
    spawner = make_spawner(kube, dask_tls=False)
    await start_server(spawner)
    env = pod_env(kube.get(PODS, "jhub", "jupyter-alice"))
    assert env["ASTROKIT_SCHEDULER_ADDRESS"] == "tcp://jupyter-alice-dask-scheduler.jhub.svc:8786"
    assert "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" not in env
    assert not exists(kube, SECRETS, "jhub", "jupyter-alice-dask-tls")
    scheduler = kube.get(DASK, "jhub", "jupyter-alice-dask")["spec"]["scheduler"]["spec"]
    assert "--protocol" not in scheduler["containers"][0]["args"]
    await spawner.stop()


async def test_tls_secrets_really_authenticate(kube, tmp_path):
    """A scheduler with the cluster Secret accepts the notebook's key pair and nothing else."""
    from distributed import Client, Scheduler
    from distributed.security import Security

    spawner = make_spawner(kube)
    await start_server(spawner)
    dirs = {}
    for name in ("jupyter-alice-dask-tls", "jupyter-alice-dask-tls-nb"):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        for file, text in kube.get(SECRETS, "jhub", name)["stringData"].items():
            (dirs[name] / file).write_text(text)
    cluster_dir, nb_dir = dirs["jupyter-alice-dask-tls"], dirs["jupyter-alice-dask-tls-nb"]
    cluster_sec = Security(
        tls_ca_file=str(cluster_dir / "ca.pem"),
        tls_scheduler_cert=str(cluster_dir / "cluster.pem"),
        tls_scheduler_key=str(cluster_dir / "cluster-key.pem"),
        require_encryption=True,
    )
    notebook_sec = Security(
        tls_ca_file=str(nb_dir / "ca.pem"),
        tls_client_cert=str(nb_dir / "client.pem"),
        tls_client_key=str(nb_dir / "client-key.pem"),
        require_encryption=True,
    )
    async with Scheduler(
        host="127.0.0.1", port=0, protocol="tls", security=cluster_sec, dashboard_address=":0"
    ) as scheduler:
        async with Client(scheduler.address, security=notebook_sec, asynchronous=True) as c:
            assert (await c.scheduler.identity())["address"] == scheduler.address
        stranger = make_spawner(kube, user="bob")
        await start_server(stranger)  # another server's credentials: another CA
        bob_dir = tmp_path / "bob"
        bob_dir.mkdir()
        for file, text in kube.get(SECRETS, "jhub", "jupyter-bob-dask-tls-nb")[
            "stringData"
        ].items():
            (bob_dir / file).write_text(text)
        bob_sec = Security(
            tls_ca_file=str(bob_dir / "ca.pem"),
            tls_client_cert=str(bob_dir / "client.pem"),
            tls_client_key=str(bob_dir / "client-key.pem"),
            require_encryption=True,
        )
        with pytest.raises((OSError, TimeoutError)):
            await Client(scheduler.address, security=bob_sec, asynchronous=True, timeout=3)
        await stranger.stop()
    await spawner.stop()


async def test_exited_notebook_is_reported_and_cleaned_up(kube):
    spawner = make_spawner(kube)
    await start_server(spawner)
    kube.terminate_pod("jhub", "jupyter-alice", exit_code=3)
    assert await eventually(lambda: spawner.poll(), what="exit code") == 3
    # KubeSpawner deletes stopped pods through stop(): the cluster goes too.
    assert not exists(kube, DASK, "jhub", "jupyter-alice-dask")
    await eventually(lambda: not exists(kube, PODS, "jhub", "jupyter-alice"), what="pod gone")


async def test_caps_are_enforced_before_anything_is_created(kube):
    spawner = make_spawner(kube, user_options={"profile": "large"}, default_caps={"max_workers": 2})
    with pytest.raises(SpawnException, match=r"n_workers=4 is above your limit: at most 2"):
        await start_server(spawner)
    assert not any(key[0] in (PODS, DASK) for key in kube.objects)


async def test_custom_values_within_group_caps(kube):
    spawner = make_spawner(
        kube,
        groups=["survey"],
        user_options={"profile": "small", "n_workers": "6", "worker_memory": "1536M"},
        default_caps={"max_workers": 2},
        caps_per_group={"survey": {"max_workers": 8}},
    )
    await start_server(spawner)
    cluster = kube.get(DASK, "jhub", "jupyter-alice-dask")
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert cluster["spec"]["worker"]["replicas"] == 6
    assert worker["resources"]["requests"] == {"cpu": "1", "memory": "1536Mi"}
    assert pod_env(kube.get(PODS, "jhub", "jupyter-alice"))["ASTROKIT_PROFILE"] == "custom"
    await spawner.stop()


async def test_missing_operator_is_a_clear_error_and_leaves_nothing(kube):
    kube.dask_crd = False
    spawner = make_spawner(kube)
    with pytest.raises(SpawnException, match="install the dask-kubernetes operator"):
        await start_server(spawner)
    await eventually(lambda: not exists(kube, PODS, "jhub", "jupyter-alice"), what="pod deleted")
    assert not exists(kube, SECRETS, "jhub", "jupyter-alice-dask-env")


async def test_missing_hub_permission_names_the_fix_and_leaves_nothing(kube):
    kube.forbidden.add((NETPOL, "create"))  # rbac.yaml not applied
    spawner = make_spawner(kube)
    with pytest.raises(SpawnException, match=r"NetworkPolicy jupyter-alice-dask was refused "
                       r"\(HTTP 403\).*rbac\.yaml"):  # fmt: skip
        await start_server(spawner)
    await eventually(lambda: not exists(kube, PODS, "jhub", "jupyter-alice"), what="pod deleted")
    leftovers = [k for k in kube.objects if k[0][1] not in ("namespaces", "events")]
    assert leftovers == []


async def test_cluster_that_never_runs_times_out_and_is_removed(kube):
    kube.operator_delay = None  # the operator is installed but does nothing
    spawner = make_spawner(kube, dask_cluster_start_timeout=1)
    with pytest.raises(SpawnException, match=r"did not start within 1 s \(last phase: none\)"):
        await start_server(spawner)
    assert not exists(kube, DASK, "jhub", "jupyter-alice-dask")
    await eventually(lambda: not exists(kube, PODS, "jhub", "jupyter-alice"), what="pod deleted")


async def test_leftover_cluster_is_replaced_not_adopted(kube):
    stale = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "jupyter-alice-dask"},
        "spec": {
            "worker": {"replicas": 9, "spec": {"containers": [{"name": "w", "image": "old"}]}},
            "scheduler": {
                "spec": {"containers": [{"name": "s", "image": "old"}]},
                "service": {"ports": []},
            },
        },
    }
    old_uid = kube.create(DASK, "jhub", stale)["metadata"]["uid"]
    spawner = make_spawner(kube)
    await start_server(spawner)
    cluster = kube.get(DASK, "jhub", "jupyter-alice-dask")
    assert cluster["metadata"]["uid"] != old_uid
    assert cluster["spec"]["worker"]["replicas"] == 2
    await spawner.stop()


async def test_per_user_namespace_and_rbac(kube):
    spawner = make_spawner(
        kube, enable_user_namespaces=True, user_namespace_template="astro-{username}"
    )
    await start_server(spawner)
    ns = "astro-alice"
    assert exists(kube, ("api/v1", "namespaces"), "", ns)
    env = pod_env(kube.get(PODS, ns, "jupyter-alice"))
    assert env["ASTROKIT_SCHEDULER_ADDRESS"] == (
        "tls://jupyter-alice-dask-scheduler.astro-alice.svc:8786"
    )
    role = kube.get(ROLES, ns, "jupyter-alice")
    assert {v for rule in role["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    assert exists(kube, DASK, ns, "jupyter-alice-dask")
    await spawner.stop()
    assert not exists(kube, DASK, ns, "jupyter-alice-dask")


async def test_progress_reports_profile_events_and_cluster(kube):
    spawner = make_spawner(kube, user_options={"profile": "small"})
    start = spawner.start()
    messages = [event async for event in spawner.progress()]
    await asyncio.wait_for(start, 30)
    text = [m["message"] for m in messages]
    assert any(t.startswith("Profile Small: 2 workers x 1 thread") for t in text), text
    assert any("[Normal] Successfully assigned jhub/jupyter-alice" in t for t in text), text
    assert text[-1] == "Dask cluster jupyter-alice-dask: Running", text
    progress = [m["progress"] for m in messages]
    assert progress == sorted(progress) and progress[-1] <= 100
    await spawner.stop()


async def test_admin_hook_is_chained_after_cluster_creation(kube):
    seen = []

    async def admin_hook(spawner, pod):
        seen.append(exists(kube, DASK, "jhub", spawner.dask_cluster_name))

    spawner = make_spawner(kube, after_pod_created_hook=admin_hook)
    await start_server(spawner)
    assert seen == [True]
    await spawner.stop()
