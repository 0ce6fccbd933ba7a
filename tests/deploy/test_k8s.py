"""deploy/k8s: every manifest valid against the Kubernetes schemas (strict), and safe as the issue asks.

The schemas come with kubernetes-validate (offline). kustomize is not needed: the resource files the
kustomization lists are validated one by one, and the kustomization must list every file of the folder.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from cds_service.config import Config
from cds_service.security.issuers import load_issuers
from tests.servers import REPO

K8S = REPO / "deploy" / "k8s"
# The oldest Kubernetes release still supported by its project when this was written, and the newest
# whose schemas the package carries.
VERSIONS = ("1.31.0", latest_version() + ".0")


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _resources() -> list[dict[str, Any]]:
    """The resources of the listed files (one per file)."""
    found = []
    for name in _kustomization()["resources"]:
        documents = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
        assert len(documents) == 1, f"{name}: one resource per file"
        found.append(documents[0])
    return found


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    matching = [r for r in _resources() if r["kind"] == kind and name in (None, r["metadata"]["name"])]
    assert len(matching) == 1, (kind, name)
    return matching[0]


def _pod() -> dict[str, Any]:
    return _one("Deployment")["spec"]["template"]


def _container() -> dict[str, Any]:
    containers = _pod()["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _settings() -> dict[str, str]:
    return _one("ConfigMap", "dex-free-cds-settings")["data"]


def test_the_kustomization_lists_every_manifest_of_the_folder():
    listed = _kustomization()["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert len(listed) == len(set(listed))
    kinds = {yaml.safe_load((K8S / name).read_text())["kind"] for name in listed}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy",
            "ConfigMap"} <= kinds


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", _kustomization()["resources"])
def test_each_manifest_is_valid_in_strict_mode(name, version):
    for document in yaml.safe_load_all((K8S / name).read_text()):
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("mistake", [
    lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinessprobe={}),  # misspelt field
    lambda d: d["spec"].update(replicas="two"),
    lambda d: d["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(
        capabilities={"drop": "ALL"}),
])
def test_strict_validation_catches_a_broken_deployment(mistake):
    broken = copy.deepcopy(_one("Deployment"))
    mistake(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_probes_use_the_liveness_and_readiness_endpoints_on_the_served_port():
    container = _container()
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert ports["http"] == int(_settings()["PORT"])


def test_pods_run_non_root_read_only_without_capabilities():
    pod, container = _pod()["spec"], _container()
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (REPO / "deploy" / "Dockerfile").read_text(), re.M)
    assert dockerfile_user
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(dockerfile_user.group(1))
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False and context.get("privileged") is False
    assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_every_writable_path_of_the_image_is_an_empty_dir():
    volumes_line = re.search(r"^VOLUME (\[.*\])$", (REPO / "deploy" / "Dockerfile").read_text(), re.M)
    assert volumes_line
    writable = set(json.loads(volumes_line.group(1)))
    volumes = {v["name"]: v for v in _pod()["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container()["volumeMounts"]}
    assert writable <= set(mounts)
    for path in writable:
        assert "emptyDir" in volumes[mounts[path]], path
    assert mounts[_settings()["PROMETHEUS_MULTIPROC_DIR"]] == "metrics"


def test_secrets_come_from_secret_references_and_settings_parse():
    env = {e["name"]: e for e in _container()["env"]}
    for name in ("CDS_DATABASE_URL", "CDS_PSEUDONYM_SALT", "CDS_REDIS_URL"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
        assert name not in _settings(), f"{name} is a secret, not a ConfigMap setting"
    assert _container()["envFrom"] == [{"configMapRef": {"name": "dex-free-cds-settings"}}]
    config = Config.from_env({**_settings(), "CDS_DATABASE_URL": "postgresql://cds@db/cds",
                              "CDS_PSEUDONYM_SALT": "s", "CDS_REDIS_URL": "redis://redis:6379/0"})
    assert config.base_url and config.jwt_issuers == Path("/etc/dexfree/issuers.json")
    assert all(server.startswith("https://") for server in config.allowed_fhir_servers)


def test_the_issuers_file_of_the_config_map_loads(tmp_path):
    issuers_map = _one("ConfigMap", "dex-free-cds-issuers")
    mount = next(m for m in _container()["volumeMounts"] if m["name"] == "issuers")
    assert Path(mount["mountPath"]) / "issuers.json" == Path(_settings()["CDS_JWT_ISSUERS"])
    (tmp_path / "issuers.json").write_text(issuers_map["data"]["issuers.json"])
    key_sets: list[str] = []  # the key set objects are made, not fetched, at load
    issuers = load_issuers(tmp_path / "issuers.json", remote=lambda url: key_sets.append(url) or object())
    assert list(issuers) == ["https://ehr.example.org/cds-client"]
    assert key_sets == ["https://ehr.example.org/.well-known/jwks.json"]


def test_replicas_disruption_budget_and_autoscaler_agree():
    deployment, pdb, hpa = _one("Deployment"), _one("PodDisruptionBudget"), _one("HorizontalPodAutoscaler")
    labels = _pod()["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["minAvailable"] >= 1 and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    service = _one("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_network_policy_and_ingress_keep_the_operations_endpoints_inside():
    policy = _one("NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["podSelector"]["matchLabels"].items() <= _pod()["metadata"]["labels"].items()
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP"), (443, "TCP")} <= egress_ports
    assert all(rule.get("from") for rule in policy["ingress"]), "every ingress rule names its sources"
    ingress = _one("Ingress")["spec"]
    assert ingress["tls"] and [p["path"] for r in ingress["rules"] for p in r["http"]["paths"]] == ["/cds-services"]
