"""Schema validation of Kubernetes manifests, shared by the builder and deploy tests.

Built-in kinds are checked against ``schemas/kubernetes-objects.schema.yaml`` (written from
the Kubernetes API reference); DaskCluster against the openAPIV3Schema of the CRD that
dask-kubernetes ships in its Helm chart, i.e. what the API server itself enforces.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from k8s_fake_api import daskcluster_validator

SCHEMAS = Path(__file__).parent / "schemas"


@cache
def _core_schemas() -> dict[str, Any]:
    return yaml.safe_load((SCHEMAS / "kubernetes-objects.schema.yaml").read_text())


def validate_manifest(obj: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` is a valid manifest of its kind."""
    kind = obj.get("kind")
    if kind == "DaskCluster":
        daskcluster_validator().validate(obj)
        # The CRD schema leaves metadata open; hold it to the same rules as other kinds.
        schema = {**_core_schemas(), "$ref": "#/definitions/objectMeta"}
        jsonschema.validate(obj["metadata"], schema)
        return
    root = _core_schemas()
    if kind not in root["kinds"]:
        raise jsonschema.ValidationError(f"no schema for kind {kind!r}")
    schema = {"definitions": root["definitions"], **root["kinds"][kind]}
    jsonschema.Draft7Validator(schema).validate(obj)
