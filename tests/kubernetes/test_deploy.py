"""deploy/kubernetes: YAML lint, Helm values against the charts' keys, RBAC sufficiency, images.

``helm`` and ``kubeconform`` are not available offline, so the values are checked against
schemas written from the charts (see ``schemas/``) and the chart values shipped in the
dask-kubernetes package, and RBAC against the requests the spawner really makes.
"""

from __future__ import annotations

import asyncio
import re
import runpy
import tomllib
from pathlib import Path

import dask_kubernetes
import jsonschema
import pytest
import yaml
from astrokit_spawner.kubernetes import AstroKitKubeSpawner, manifests
from k8s_fake_api import _parse_path
from k8s_helpers import make_spawner, start_server
from k8s_schemas import SCHEMAS, validate_manifest
from traitlets.config import Config
from yamllint import linter
from yamllint.config import YamlLintConfig

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"

# The chart's own hub Role (zero-to-jupyterhub-k8s jupyterhub/templates/hub/rbac.yaml).
Z2JH_HUB_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
        "verbs": ["get", "watch", "list", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]


def load(name):
    return yaml.safe_load((DEPLOY / name).read_text())


def load_all(name):
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def test_yamllint_clean():
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    files = sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != ".yamllint.yaml")
    assert len(files) >= 5, files
    problems = [
        f"{path.relative_to(REPO)}:{p.line}: {p.desc}"
        for path in files
        for p in linter.run(path.read_text(), config, str(path))
    ]
    assert problems == []


def test_values_match_the_z2jh_chart_schema():
    schema = yaml.safe_load((SCHEMAS / "z2jh-values.schema.yaml").read_text())
    values = load("values.yaml")
    jsonschema.validate(values, schema)
    typo = {**values, "singleuser": {**values["singleuser"], "imag": {}}}
    with pytest.raises(jsonschema.ValidationError, match="imag"):
        jsonschema.validate(typo, schema)


def test_values_select_our_spawner_and_set_only_real_traits():
    values = load("values.yaml")
    config = values["hub"]["config"]
    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][
        "jupyterhub.spawners"
    ]
    name = config["JupyterHub"]["spawner_class"]
    module, _, attr = entry_points[name].partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is AstroKitKubeSpawner
    known = set(AstroKitKubeSpawner.class_trait_names(config=True))
    for section in ("ProfilesMixin", "AstroKitKubeSpawner", "KubeSpawner"):
        unknown = set(config[section]) - known
        assert not unknown, f"hub.config.{section}: not traits of the spawner: {unknown}"


async def test_values_configure_a_working_spawner(kube):
    config = Config(load("values.yaml")["hub"]["config"])
    spawner = make_spawner(kube, config=config, groups=["survey-team"])
    assert spawner.store_url == "s3://astrokit"
    assert int(spawner.dask_scheduler_memory) == 1 << 30
    assert spawner.user_caps().max_workers == 16
    profile = spawner.resolve_user_profile({"profile": "large", "n_workers": "12"})
    assert profile.n_workers == 12


def test_rbac_manifests_are_valid():
    docs = load_all("rbac.yaml") + load_all("rbac-user-namespaces.yaml")
    assert [d["kind"] for d in docs] == [
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ]
    for doc in docs:
        validate_manifest(doc)


def _allowed(rules, group, resource, verb):
    return any(
        (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
        and (resource in rule["resources"] or "*" in rule["resources"])
        and (verb in rule["verbs"] or "*" in rule["verbs"])
        for rule in rules
    )


def _permission(method, path, query_watch):
    (prefix, plural), _, name, sub = _parse_path(path)
    group = "" if prefix == "api/v1" else prefix.split("/")[1]
    resource = f"{plural}/{sub}" if sub else plural
    if method == "GET":
        verb = "get" if name else ("watch" if query_watch else "list")
    else:
        verb = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}[method]
    return group, resource, verb


async def _requests_of_a_spawn(kube, **config):
    spawner = make_spawner(kube, user_options={"profile": "small"}, **config)
    await start_server(spawner)
    await spawner.poll()
    await asyncio.wait_for(spawner.stop(), 30)
    return {_permission(method, path, watch) for method, path, watch in kube.requests_with_watch}


@pytest.mark.parametrize("user_namespaces", [False, True], ids=["shared-ns", "user-ns"])
async def test_hub_rbac_covers_every_request_the_spawner_makes(kube, user_namespaces):
    if user_namespaces:
        rules = load_all("rbac-user-namespaces.yaml")[0]["rules"]
        used = await _requests_of_a_spawn(kube, enable_user_namespaces=True)
    else:
        rules = Z2JH_HUB_RULES + load_all("rbac.yaml")[0]["rules"]
        used = await _requests_of_a_spawn(kube)
    assert ("kubernetes.dask.org", "daskclusters", "create") in used
    missing = sorted(p for p in used if not _allowed(rules, *p))
    assert missing == []
    # RBAC escalation prevention: the hub may only grant what it holds itself.
    _, role, _ = manifests.notebook_rbac_manifests(
        name="n", namespace="ns", cluster_name="c", per_user_namespace=user_namespaces
    )
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert _allowed(rules, group, resource, verb), (group, resource, verb)


def _keys(tree, prefix=()):
    for key, value in tree.items():
        yield (*prefix, key)
        if isinstance(value, dict) and value:
            yield from _keys(value, (*prefix, key))


def test_dask_operator_values_use_only_chart_keys():
    chart_values = yaml.safe_load(
        (
            Path(dask_kubernetes.__file__).parent
            / "operator/deployment/helm/dask-kubernetes-operator/values.yaml"
        ).read_text()
    )
    chart_keys = set(_keys(chart_values))
    ours = load("dask-operator-values.yaml")
    # `resources` is {} in the chart: its children are Kubernetes' ResourceRequirements.
    unknown = [k for k in _keys(ours) if k not in chart_keys and k[0] != "resources"]
    assert unknown == []
    assert ours["rbac"]["cluster"] is True  # DaskClusters live in user namespaces too


def test_minio_values():
    schema = yaml.safe_load((SCHEMAS / "minio-values.schema.yaml").read_text())
    values = load("minio-values.yaml")
    jsonschema.validate(values, schema)
    # no credentials in the file: they come from existing Secrets
    assert "rootPassword" not in values
    assert all("secretKey" not in user for user in values["users"])
    assert values["buckets"][0]["name"] == "s3://astrokit".removeprefix("s3://")


def _dockerfile(name):
    text = (DEPLOY / name).read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


@pytest.mark.parametrize("name", ["hub.Dockerfile", "notebook.Dockerfile"])
def test_dockerfiles_copy_existing_paths(name):
    lines = _dockerfile(name)
    assert any(line.startswith("FROM ") for line in lines)
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    assert copies
    # The build needs the readme pyproject.toml names; it is the lead's file, checked by
    # the packaging tests, so here it only has to be the one pyproject declares.
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    for sources in copies:
        for src in sources:
            if not src.startswith("--") and src != readme:
                assert (REPO / src).exists(), f"{name}: COPY source {src} missing"
    assert any(readme in sources for sources in copies), f"{name} must copy {readme}"


def test_hub_image_has_no_torch_and_notebook_pins_it():
    hub = " ".join(_dockerfile("hub.Dockerfile"))
    notebook = " ".join(_dockerfile("notebook.Dockerfile"))
    assert "[hub,k8s]" in hub and "torch" not in hub.replace('import torch"', "")
    assert '"torch==${TORCH_VERSION}"' in notebook
    assert "whl/cpu" in notebook and "[lab,ml]" in notebook


def test_worker_image_dask_config_matches_the_local_clusters():
    # The worker image's /etc/dask/astrokit.yaml sets what local clusters get from
    # astrokit.cluster.WORKER_DASK_CONFIG (glibc malloc defaults for torch).
    import dask

    from astrokit.cluster import WORKER_DASK_CONFIG

    assert "COPY deploy/kubernetes/notebook/dask.yaml /etc/dask/astrokit.yaml" in "\n".join(
        _dockerfile("notebook.Dockerfile")
    )
    image_config = load("notebook/dask.yaml")
    for key, value in WORKER_DASK_CONFIG.items():
        assert dask.config.get(key, config=image_config, default="missing") == value, key
    # and Dask, reading that file, really drops the variable from the workers' environment
    from distributed.nanny import _get_env_variables

    merged = dask.config.merge(dask.config.config, image_config)
    environ = dask.config.get("distributed.nanny.pre-spawn-environ", config=merged)
    assert environ["MALLOC_TRIM_THRESHOLD_"] is None and "OMP_NUM_THREADS" in environ
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        spawned = _get_env_variables("distributed.nanny.pre-spawn-environ")
    assert "MALLOC_TRIM_THRESHOLD_" not in spawned and spawned["OMP_NUM_THREADS"] == "1"


def test_notebook_proxy_allows_exactly_scheduler_dashboards():
    seen = {}

    class FakeConfig:
        def __getattr__(self, section):
            return seen.setdefault(section, type("Section", (), {})())

    namespace = runpy.run_path(
        str(DEPLOY / "notebook" / "jupyter_server_config.py"),
        init_globals={"get_config": FakeConfig},
    )
    allow = seen["ServerProxy"].host_allowlist
    assert allow is namespace["_allowed_host"]
    url = manifests.dashboard_url("/user/alice/", "jupyter-alice-dask", "jhub")
    host = url.split("/proxy/")[1].split(":")[0]
    assert allow(None, host) and allow(None, "localhost")
    for bad in ("hub.jhub.svc", "example.org", "x-scheduler.ns.svc.evil.org", "10.0.0.1"):
        assert not allow(None, bad), bad
