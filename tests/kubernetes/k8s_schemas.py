"""Schema validation of Kubernetes manifests, shared by the builder and deploy tests.

Built-in kinds are checked in two layers:

1. their structure (fields, types, required fields, no unknown fields) against the official
   OpenAPI schemas of Kubernetes, in kubernetes-validate's strict mode. The package ships the
   schemas of every release it supports and reads them from its own files: no network. We
   check against the oldest release ``deploy/kubernetes/README.md`` supports and the newest
   the package ships, so a field that is too new or already removed fails either way;
2. what the API server validates in code and the OpenAPI schemas do not carry (name and label
   syntax, RBAC and NetworkPolicy enums, cluster-scoped objects without a namespace) against
   ``schemas/kubernetes-api-rules.schema.yaml``.

DaskCluster is checked against the openAPIV3Schema of the CRD that dask-kubernetes ships in
its Helm chart, i.e. what the API server itself enforces, plus the metadata rules of layer 2.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from k8s_fake_api import daskcluster_validator
from kubernetes_validate.utils import SchemaNotFoundError, latest_version
from kubernetes_validate.utils import validate as validate_official

SCHEMAS = Path(__file__).parent / "schemas"

#: The oldest Kubernetes release deploy/kubernetes/README.md supports.
OLDEST_SUPPORTED = "1.27"


@cache
def kubernetes_versions() -> tuple[str, ...]:
    """The releases manifests are validated against: the oldest supported and the newest."""
    return (OLDEST_SUPPORTED, latest_version())


@cache
def _rules() -> dict[str, Any]:
    return yaml.safe_load((SCHEMAS / "kubernetes-api-rules.schema.yaml").read_text())


def _check_rules(obj: dict[str, Any], kind_schema: dict[str, Any]) -> None:
    schema = {"definitions": _rules()["definitions"], **kind_schema}
    jsonschema.Draft7Validator(schema).validate(obj)


def validate_manifest(obj: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` is a valid manifest of its kind."""
    kind = obj.get("kind")
    if kind == "DaskCluster":
        daskcluster_validator().validate(obj)
        # The CRD schema leaves metadata open; hold it to the same rules as other kinds.
        _check_rules(obj["metadata"], {"$ref": "#/definitions/objectMeta"})
        return
    for version in kubernetes_versions():
        try:
            # kubernetes-validate's ValidationError is a jsonschema.ValidationError.
            validate_official(obj, version, strict=True)
        except SchemaNotFoundError as exc:
            raise jsonschema.ValidationError(
                f"no schema for kind {kind!r} ({obj.get('apiVersion')!r}) in Kubernetes "
                f"{version}: {exc.message}"
            ) from exc
    default = {
        "required": ["metadata"],
        "properties": {"metadata": {"$ref": "#/definitions/objectMeta"}},
    }
    _check_rules(obj, _rules()["kinds"].get(kind, default))
