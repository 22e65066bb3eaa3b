"""The pure manifest builders, against literal expectations and the shipped schemas."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from astrokit_spawner.kubernetes import manifests as m
from astrokit_spawner.profiles import DEFAULT_PROFILES, Profile
from k8s_schemas import validate_manifest

SMALL = DEFAULT_PROFILES[0]
OWNER = {
    "apiVersion": "v1",
    "kind": "Pod",
    "name": "jupyter-alice",
    "uid": "6f1c2d0e-uid",
    "controller": False,
    "blockOwnerDeletion": True,
}


def test_owner_reference_points_at_the_pod():
    assert m.owner_reference("jupyter-alice", "6f1c2d0e-uid") == OWNER
    with pytest.raises(m.ManifestError, match="no uid"):
        m.owner_reference("jupyter-alice", "")


@pytest.mark.parametrize(
    ("cpu", "expected"), [(1, "1"), (2.0, "2"), (0.5, "500m"), (1.25, "1250m"), (0.001, "1m")]
)
def test_cpu_quantity(cpu, expected):
    assert m.cpu_quantity(cpu) == expected


@pytest.mark.parametrize("cpu", [0, -1, 0.0004, float("nan")])
def test_cpu_quantity_rejects(cpu):
    with pytest.raises(m.ManifestError, match="CPU amount"):
        m.cpu_quantity(cpu)


@pytest.mark.parametrize(
    ("nbytes", "expected"),
    [(1 << 30, "1Gi"), (3 * (1 << 30), "3Gi"), (1536 * (1 << 20), "1536Mi"), (1000, "1000")],
)
def test_memory_quantity(nbytes, expected):
    assert m.memory_quantity(nbytes) == expected


@pytest.mark.parametrize("nbytes", [0, -5, 1.5, True, "1G"])
def test_memory_quantity_rejects(nbytes):
    with pytest.raises(m.ManifestError, match="memory amount"):
        m.memory_quantity(nbytes)


def test_cluster_name_and_addresses():
    assert m.cluster_name_for("jupyter-alice") == "jupyter-alice-dask"
    assert m.scheduler_host("jupyter-alice-dask", "jhub") == "jupyter-alice-dask-scheduler.jhub.svc"
    assert (
        m.scheduler_address("jupyter-alice-dask", "jhub")
        == "tcp://jupyter-alice-dask-scheduler.jhub.svc:8786"
    )
    assert m.scheduler_address("c", "ns", tls=True) == "tls://c-scheduler.ns.svc:8786"
    assert (
        m.dashboard_url("/user/alice/", "jupyter-alice-dask", "jhub")
        == "/user/alice/proxy/jupyter-alice-dask-scheduler.jhub.svc:8787/status"
    )
    assert m.dashboard_url("/user/a/s", "c", "n") == "/user/a/s/proxy/c-scheduler.n.svc:8787/status"


def test_long_cluster_names_stay_unique_and_fit_the_service_name():
    a = m.cluster_name_for("jupyter-" + "a" * 55)
    b = m.cluster_name_for("jupyter-" + "a" * 54 + "b")
    assert a != b
    for name in (a, b):
        assert len(f"{name}-scheduler") <= 63
        assert name[0].isalpha() and name[-1].isalnum()
    assert m.cluster_name_for("7user") == "d-7user-dask"
    with pytest.raises(m.ManifestError, match="DNS label"):
        m.cluster_name_for("Jupyter_Alice")


def test_worker_resources_follow_the_profile():
    large = DEFAULT_PROFILES[2]  # 4 workers x 2 threads, 3 GiB each
    assert m.worker_resources(large) == {
        "requests": {"cpu": "2", "memory": "3Gi"},
        "limits": {"cpu": "2", "memory": "3Gi"},
    }


def test_dask_cluster_manifest_literal():
    got = m.dask_cluster_manifest(
        name="jupyter-alice-dask",
        namespace="jhub",
        profile=SMALL,
        image="ghcr.io/astrokit/notebook:0.1.0",
        env={"ASTROKIT_PROFILE": "small"},
        env_secret="jupyter-alice-dask-env",
        owner=OWNER,
        labels={"hub.jupyter.org/username": "alice"},
    )
    image = "ghcr.io/astrokit/notebook:0.1.0"
    env = [{"name": "ASTROKIT_PROFILE", "value": "small"}]
    env_from = [{"secretRef": {"name": "jupyter-alice-dask-env"}}]
    probe = {"httpGet": {"port": "http-dashboard", "path": "/health"}}
    assert got == {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {
            "name": "jupyter-alice-dask",
            "namespace": "jhub",
            "labels": {
                "app.kubernetes.io/managed-by": "astrokit",
                "hub.jupyter.org/username": "alice",
            },
            "ownerReferences": [OWNER],
        },
        "spec": {
            "idleTimeout": 0,
            "worker": {
                "replicas": 2,
                "spec": {
                    "containers": [
                        {
                            "name": "worker",
                            "image": image,
                            "args": [
                                "dask",
                                "worker",
                                "--nthreads",
                                "1",
                                "--memory-limit",
                                "1073741824",
                                "--name",
                                "$(DASK_WORKER_NAME)",
                                "--dashboard",
                                "--dashboard-address",
                                "8788",
                            ],
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {"cpu": "1", "memory": "1Gi"},
                            },
                            "ports": [
                                {"name": "http-dashboard", "containerPort": 8788, "protocol": "TCP"}
                            ],
                            "imagePullPolicy": "IfNotPresent",
                            "envFrom": env_from,
                        }
                    ]
                },
            },
            "scheduler": {
                "spec": {
                    "containers": [
                        {
                            "name": "scheduler",
                            "image": image,
                            "args": ["dask", "scheduler", "--host", "0.0.0.0"],
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "500m", "memory": "1Gi"},
                            },
                            "ports": [
                                {"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
                                {
                                    "name": "http-dashboard",
                                    "containerPort": 8787,
                                    "protocol": "TCP",
                                },
                            ],
                            "readinessProbe": {
                                **probe,
                                "initialDelaySeconds": 0,
                                "periodSeconds": 1,
                                "timeoutSeconds": 300,
                            },
                            "livenessProbe": {
                                **probe,
                                "initialDelaySeconds": 15,
                                "periodSeconds": 20,
                            },
                            "imagePullPolicy": "IfNotPresent",
                            "envFrom": env_from,
                        }
                    ]
                },
                "service": {
                    "type": "ClusterIP",
                    "selector": {
                        "dask.org/cluster-name": "jupyter-alice-dask",
                        "dask.org/component": "scheduler",
                    },
                    "ports": [
                        {
                            "name": "tcp-comm",
                            "protocol": "TCP",
                            "port": 8786,
                            "targetPort": "tcp-comm",
                        },
                        {
                            "name": "http-dashboard",
                            "protocol": "TCP",
                            "port": 8787,
                            "targetPort": "http-dashboard",
                        },
                    ],
                },
            },
        },
    }
    validate_manifest(got)


def test_custom_profile_sizes_and_scheduler_overrides():
    profile = Profile("custom", "Custom", "", 1.0, 1 << 30, 5, 3, 1536 * (1 << 20))
    got = m.dask_cluster_manifest(
        name="c",
        namespace="n",
        profile=profile,
        image="img:1",
        scheduler_cpu=1.5,
        scheduler_memory=2 << 30,
        image_pull_policy="Always",
    )
    worker = got["spec"]["worker"]["spec"]["containers"][0]
    scheduler = got["spec"]["scheduler"]["spec"]["containers"][0]
    assert got["spec"]["worker"]["replicas"] == 5
    assert worker["args"][:6] == [
        "dask",
        "worker",
        "--nthreads",
        "3",
        "--memory-limit",
        "1610612736",
    ]
    assert worker["resources"]["limits"] == {"cpu": "3", "memory": "1536Mi"}
    assert scheduler["resources"]["requests"] == {"cpu": "1500m", "memory": "2Gi"}
    assert worker["imagePullPolicy"] == scheduler["imagePullPolicy"] == "Always"
    assert "envFrom" not in worker and "ownerReferences" not in got["metadata"]
    validate_manifest(got)


def test_env_secret_literal_and_key_check():
    got = m.env_secret_manifest(
        name="jupyter-alice-dask-env",
        namespace="jhub",
        data={"AWS_ACCESS_KEY_ID": "key", "ASTROKIT_S3_ANON": 0},
        owner=OWNER,
    )
    assert got == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "jupyter-alice-dask-env",
            "namespace": "jhub",
            "labels": {"app.kubernetes.io/managed-by": "astrokit"},
            "ownerReferences": [OWNER],
        },
        "stringData": {"AWS_ACCESS_KEY_ID": "key", "ASTROKIT_S3_ANON": "0"},
    }
    validate_manifest(got)
    with pytest.raises(m.ManifestError, match="not valid Secret keys"):
        m.env_secret_manifest(name="s", namespace="n", data={"BAD KEY": "x"})


def test_network_policy_admits_only_the_cluster_and_its_notebook():
    got = m.network_policy_manifest(
        name="jupyter-alice-dask", namespace="jhub", cluster_name="jupyter-alice-dask", owner=OWNER
    )
    own_pods = {"matchLabels": {"dask.org/cluster-name": "jupyter-alice-dask"}}
    notebook = {"matchLabels": {"astrokit.io/dask-cluster": "jupyter-alice-dask"}}
    assert got["spec"] == {
        "podSelector": own_pods,
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": own_pods}, {"podSelector": notebook}]}],
    }
    assert got["metadata"]["ownerReferences"] == [OWNER]
    validate_manifest(got)
    with_operator = m.network_policy_manifest(
        name="c", namespace="n", cluster_name="c", operator_namespace="dask-operator"
    )
    assert with_operator["spec"]["ingress"][0]["from"][2] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dask-operator"}}
    }
    validate_manifest(with_operator)


def test_rbac_in_a_shared_namespace_reads_only_the_own_cluster():
    sa, role, binding = m.notebook_rbac_manifests(
        name="jupyter-alice",
        namespace="jhub",
        cluster_name="jupyter-alice-dask",
        per_user_namespace=False,
    )
    assert sa["kind"] == "ServiceAccount" and sa["automountServiceAccountToken"] is True
    assert role["rules"] == [
        {
            "apiGroups": ["kubernetes.dask.org"],
            "resources": ["daskclusters"],
            "resourceNames": ["jupyter-alice-dask"],
            "verbs": ["get", "watch"],
        }
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "jupyter-alice",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jupyter-alice", "namespace": "jhub"}
    ]
    for obj in (sa, role, binding):
        validate_manifest(obj)


def test_rbac_in_a_user_namespace_is_read_only():
    _, role, _ = m.notebook_rbac_manifests(
        name="jupyter-alice",
        namespace="jhub-alice",
        cluster_name="jupyter-alice-dask",
        per_user_namespace=True,
    )
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    resources = {res for rule in role["rules"] for res in rule["resources"]}
    assert resources == {"daskclusters", "daskworkergroups", "pods", "pods/log", "services"}
    assert "secrets" not in resources  # the env Secret holds the store credentials
    validate_manifest(role)


def test_schema_rejects_broken_manifests():
    good = m.dask_cluster_manifest(name="c", namespace="n", profile=SMALL, image="img:1")
    bad = copy.deepcopy(good)
    bad["spec"]["worker"]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(bad)
    bad = copy.deepcopy(good)
    del bad["spec"]["scheduler"]["service"]
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(bad)
    secret = m.env_secret_manifest(name="s", namespace="n", data={"A": "b"})
    secret["metadata"]["ownerReferences"] = [{"kind": "Pod", "name": "p"}]
    with pytest.raises(jsonschema.ValidationError, match="uid"):
        validate_manifest(secret)
    with pytest.raises(m.ManifestError, match="DNS-1035"):
        m.env_secret_manifest(name="Bad_Name", namespace="n", data={})


def _policy():
    return m.network_policy_manifest(name="c", namespace="n", cluster_name="c", owner=OWNER)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        # Structure, from the official Kubernetes schemas (kubernetes-validate, strict):
        (lambda p: p["spec"].update(podSelectr={}), "'podSelectr' was unexpected"),
        (lambda p: p["spec"]["ingress"][0].update(ports=[{"port": [80]}]), r"\[80\]"),
        (lambda p: p["spec"].pop("podSelector"), "'podSelector' is a required property"),
        (lambda p: p.update(apiVersion="networking.k8s.io/v2"), "no schema for kind"),
        # What the API server checks in code (schemas/kubernetes-api-rules.schema.yaml):
        (lambda p: p["metadata"].update(name="Bad_Name"), "does not match"),
        (
            lambda p: p["spec"]["ingress"][0].update(ports=[{"protocol": "HTTP"}]),
            "'HTTP' is not one of",
        ),
    ],
    ids=["unknown-field", "wrong-type", "missing-field", "unknown-version", "name", "enum"],
)
def test_built_in_kinds_are_checked_for_structure_and_api_rules(break_it, message):
    validate_manifest(_policy())
    bad = _policy()
    break_it(bad)
    with pytest.raises(jsonschema.ValidationError, match=message):
        validate_manifest(bad)


def test_misspelt_rbac_verb_is_refused():
    _, role, _ = m.notebook_rbac_manifests(
        name="jupyter-alice",
        namespace="jhub",
        cluster_name="jupyter-alice-dask",
        per_user_namespace=False,
    )
    role["rules"][0]["verbs"] = ["gett"]
    with pytest.raises(jsonschema.ValidationError, match="'gett' is not one of"):
        validate_manifest(role)


PEM = {
    name: f"-----BEGIN X-----\n{name}\n-----END X-----\n".encode()
    for name in ("ca.pem", "cluster.pem", "cluster-key.pem", "client.pem", "client-key.pem")
}


def test_tls_secrets_split_the_key_pairs():
    cluster, notebook = m.tls_secret_manifests(
        cluster_name="jupyter-alice-dask", namespace="jhub", pem=PEM, owner=OWNER
    )
    assert cluster["metadata"]["name"] == "jupyter-alice-dask-tls"
    assert notebook["metadata"]["name"] == "jupyter-alice-dask-tls-nb"
    assert cluster["stringData"] == {
        "ca.pem": PEM["ca.pem"].decode(),
        "cluster.pem": PEM["cluster.pem"].decode(),
        "cluster-key.pem": PEM["cluster-key.pem"].decode(),
    }
    assert sorted(notebook["stringData"]) == ["ca.pem", "client-key.pem", "client.pem"]
    for secret in (cluster, notebook):
        validate_manifest(secret)
    longest = m.cluster_name_for("jupyter-" + "x" * 60)
    for secret in m.tls_secret_manifests(cluster_name=longest, namespace="n", pem=PEM):
        assert len(secret["metadata"]["name"]) <= 63
    with pytest.raises(m.ManifestError, match=r"client-key\.pem"):
        m.tls_secret_manifests(
            cluster_name="c",
            namespace="n",
            pem={k: v for k, v in PEM.items() if "client-" not in k},
        )


def test_with_tls():
    plain = m.dask_cluster_manifest(name="c", namespace="n", profile=SMALL, image="img:1", env={})
    got = m.with_tls(plain, secret_name="c-tls", scheduler_address="tls://c-scheduler.n.svc:8786")
    assert "volumes" not in plain["spec"]["worker"]["spec"]  # the input is not modified
    mount = "/etc/astrokit/dask-tls"
    for role in ("scheduler", "worker"):
        pod = got["spec"][role]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert pod["volumes"] == [{"name": "dask-tls", "secret": {"secretName": "c-tls"}}]
        assert container["volumeMounts"] == [
            {"name": "dask-tls", "mountPath": mount, "readOnly": True}
        ]
        assert env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] == f"{mount}/ca.pem"
        assert env["DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT"] == f"{mount}/cluster.pem"
        assert env["DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY"] == f"{mount}/cluster-key.pem"
        assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"] == f"{mount}/cluster.pem"
        assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    worker_env = {
        e["name"]: e["value"] for e in got["spec"]["worker"]["spec"]["containers"][0]["env"]
    }
    assert worker_env["DASK_SCHEDULER_ADDRESS"] == "tls://c-scheduler.n.svc:8786"
    scheduler_args = got["spec"]["scheduler"]["spec"]["containers"][0]["args"]
    assert scheduler_args == ["dask", "scheduler", "--host", "0.0.0.0", "--protocol", "tls"]
    validate_manifest(got)
