"""The Kubernetes deployment (deploy/kubernetes) checked offline:

- every overlay and variant renders with `kubectl kustomize` and every object
  validates in strict mode against a pinned Kubernetes version (kubernetes-validate);
  the Prometheus Operator objects against the fields this repository uses;
- the policy points a later edit must not drop: no subPath, non-root, read-only
  root, no privilege escalation, capabilities dropped, seccomp, probes on the
  admin port, resources set, no service account token, a stable ConfigMap name
  mounted as a directory, no secret values in ConfigMaps, every ${env:...} the
  config needs defined by the container, the grace period covering
  shutdown_grace, and the gateway's replicas, spread, HPA, PDB and NetworkPolicy;
- the weir.toml inside each rendered ConfigMap passes `weir validate` (plugins
  from the ConfigMap's binaryData and, for the image's paths, from the build);
- the alert rules pass `promtool check rules` and `promtool test rules`, and each
  alert's runbook section exists in docs/deploy.md;
- every weir metric the alerts and the Grafana dashboard use is on a running
  weir's /metrics after a short end-to-end run that makes each family appear.

Tools: kubectl (with its built-in kustomize), kubernetes-validate (PyPI, in
tests/.venv), promtool (Debian package `prometheus`). A missing tool fails the
test with the package to install."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
from functools import lru_cache
from pathlib import Path

import grpc
import pytest
import requests
import yaml

from otlp_helpers import (
    LOOPBACK,
    REPO_ROOT,
    logs_request,
    make_log,
    make_trace_request,
    parse_prometheus,
    plugin_dir,
    plugin_wasm,
    toml_str,
    wait_until,
    weir_bin,
)

DEPLOY = REPO_ROOT / "deploy" / "kubernetes"
MONITORING = DEPLOY / "components" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
RULE_TESTS = MONITORING / "tests" / "weir-rules.test.yaml"
DASHBOARD = MONITORING / "weir-dashboard.json"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"

# Native sidecars need >= 1.29 and the preStop sleep action >= 1.30; 1.32 is the
# kubectl on the CI machines. Image volumes need 1.33.
K8S_VERSION = "1.32.0"
IMAGE_VOLUME_K8S_VERSION = "1.33.0"

# variant -> (overlay, components added on top, Kubernetes version to validate against)
VARIANTS = {
    "gateway": ("gateway", [], K8S_VERSION),
    "sidecar": ("sidecar", [], K8S_VERSION),
    "gateway+large-plugins-init": ("gateway", ["large-plugins-init"], K8S_VERSION),
    "gateway+large-plugins-image-volume": ("gateway", ["large-plugins-image-volume"], IMAGE_VOLUME_K8S_VERSION),
}

# Where the image puts things, and what stands in for them in this checkout.
IMAGE_PLUGIN_DIR = "/usr/share/weir/plugins/"
CONFIG_DIR = "/etc/weir"
ADMIN_PORT = 13133
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
SECRETISH_KEY = re.compile(r"(authorization|api[-_]?key|token|password|passwd|secret|salt|credential)", re.I)
EXTERNAL_METRICS = {
    "up",
    "kube_pod_container_status_restarts_total",
    "kube_pod_init_container_status_restarts_total",
}


# ---------------------------------------------------------------------------
# tools


def tool(name: str, install: str) -> str:
    """The path of a command-line tool, or a failure naming what to install."""
    venv_bin = Path(__file__).resolve().parents[1] / ".venv" / "bin" / name
    if venv_bin.exists():
        return str(venv_bin)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` not found on PATH: install {install}", pytrace=False)
    return found


def kubectl() -> str:
    return tool("kubectl", "kubectl >= 1.32 (it embeds kustomize; https://pkgs.k8s.io or the release binary)")


def promtool() -> str:
    return tool("promtool", "the Debian package `prometheus` (apt-get install prometheus)")


def kubernetes_validate() -> str:
    return tool("kubernetes-validate", "the PyPI package kubernetes-validate==1.37.0 (tests/e2e/requirements.txt)")


def run(cmd: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


# ---------------------------------------------------------------------------
# rendering


@lru_cache(maxsize=None)
def render_text(variant: str) -> str:
    overlay, components, _ = VARIANTS[variant]
    target = DEPLOY / overlay
    if components:
        # A throwaway kustomization: the overlay plus the components (kustomize
        # wants relative paths).
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"weir-kustomize-{os.getpid()}-{variant.replace('+', '-')}"
        tmp.mkdir(parents=True, exist_ok=True)
        rel = lambda p: os.path.relpath(p, tmp)  # noqa: E731
        (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [rel(target)],
            "components": [rel(DEPLOY / "components" / c) for c in components],
        }))
        target = tmp
    r = run([kubectl(), "kustomize", str(target)])
    assert r.returncode == 0, f"kubectl kustomize {target} failed:\n{r.stderr}"
    return r.stdout


def render(variant: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(render_text(variant)) if d]


def objects(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in objects(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in objects(docs, "Deployment")]


def weir_containers(spec: dict) -> list[dict]:
    """weir's containers in a pod: a regular container or a native sidecar."""
    return [c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == "weir"]


def all_containers(spec: dict) -> list[dict]:
    return spec.get("containers", []) + spec.get("initContainers", [])


def config_map_for(docs: list[dict], spec: dict) -> tuple[dict, dict]:
    """(the weir container's config ConfigMap, its volume mount)."""
    (weir,) = weir_containers(spec)
    (mount,) = [m for m in weir["volumeMounts"] if m["mountPath"] == CONFIG_DIR]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert "configMap" in volume, f"{CONFIG_DIR} must be a ConfigMap volume, got {volume}"
    return one(docs, "ConfigMap", volume["configMap"]["name"]), mount


def weir_config(cm: dict) -> dict:
    return tomllib.loads(cm["data"]["weir.toml"])


def duration_seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    assert m, f"unexpected duration {text!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


# ---------------------------------------------------------------------------
# schemas and policy


@pytest.mark.parametrize("variant", VARIANTS)
def test_renders_and_validates_strictly(variant, tmp_path):
    text = render_text(variant)
    path = tmp_path / f"{variant}.yaml"
    path.write_text(text)
    version = VARIANTS[variant][2]
    r = run([kubernetes_validate(), "--strict", "-k", version, "--quiet", str(path)], timeout=300)
    assert r.returncode == 0 and "ERROR" not in r.stdout + r.stderr, (
        f"kubernetes-validate --strict -k {version} {variant}:\n{r.stdout}\n{r.stderr}")
    unknown = re.findall(r"Couldn't find schema for kind (\w+)", r.stdout + r.stderr)
    assert set(unknown) <= {"ServiceMonitor", "PodMonitor", "PrometheusRule"}, unknown
    for doc in render(variant):
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            check_prometheus_operator_object(doc)


def check_prometheus_operator_object(doc: dict) -> None:
    """kubernetes-validate has no CRD schemas: check the fields used here against
    the Prometheus Operator's v1 API, strictly (an unknown key is a typo)."""
    import jsonschema

    endpoint = {"type": "object", "additionalProperties": False, "required": ["port"], "properties": {
        "port": {"type": "string"}, "path": {"type": "string"},
        "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
        "scrapeTimeout": {"type": "string", "pattern": r"^\d+[smh]$"}}}
    selector = {"type": "object", "additionalProperties": False, "required": ["matchLabels"],
                "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}}
    rule = {"type": "object", "additionalProperties": False, "required": ["expr"], "properties": {
        "alert": {"type": "string"}, "record": {"type": "string"}, "expr": {"type": "string"},
        "for": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}
    specs = {
        "ServiceMonitor": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                           "properties": {"selector": selector, "endpoints": {"type": "array", "items": endpoint}}},
        "PodMonitor": {"type": "object", "additionalProperties": False, "required": ["selector", "podMetricsEndpoints"],
                       "properties": {"selector": selector, "podMetricsEndpoints": {"type": "array", "items": endpoint}}},
        "PrometheusRule": {"type": "object", "additionalProperties": False, "required": ["groups"], "properties": {
            "groups": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                  "required": ["name", "rules"], "properties": {
                                                      "name": {"type": "string"},
                                                      "rules": {"type": "array", "items": rule}}}}}},
    }
    assert doc["apiVersion"] == "monitoring.coreos.com/v1", doc["apiVersion"]
    assert doc["kind"] in specs, f"unexpected Prometheus Operator kind {doc['kind']}"
    jsonschema.validate(doc["spec"], specs[doc["kind"]])


@pytest.mark.parametrize("variant", VARIANTS)
def test_security_and_probe_policy(variant):
    docs = render(variant)
    specs = pod_specs(docs)
    assert specs, f"{variant}: no Deployment rendered"
    for name, spec in specs:
        where = f"{variant}: Deployment {name}"
        assert spec.get("automountServiceAccountToken") is False, f"{where}: automountServiceAccountToken must be false"
        sa = one(docs, "ServiceAccount", spec["serviceAccountName"])
        assert sa.get("automountServiceAccountToken") is False, f"{where}: ServiceAccount mounts a token"
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, f"{where}: pod securityContext.runAsNonRoot"
        assert pod_sc.get("runAsUser", 0) != 0, f"{where}: runAsUser must be a non-root uid"
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault"
        for c in all_containers(spec):
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, f"{cw}: readOnlyRootFilesystem"
            assert sc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{cw}: capabilities.drop [ALL]"
            assert not sc.get("privileged"), f"{cw}: privileged"
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, f"{cw}: runs as root"
            res = c.get("resources", {})
            assert {"cpu", "memory"} <= set(res.get("requests", {})), f"{cw}: cpu and memory requests"
            assert "memory" in res.get("limits", {}), f"{cw}: memory limit"
            for m in c.get("volumeMounts", []):
                assert "subPath" not in m and "subPathExpr" not in m, f"{cw}: subPath mount {m} (never updated by kubelet)"

        weirs = weir_containers(spec)
        if not weirs:
            continue
        (weir,) = weirs
        ports = {p["name"]: p["containerPort"] for p in weir.get("ports", [])}
        for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready"), ("startupProbe", "/health")):
            get = weir.get(probe, {}).get("httpGet")
            assert get, f"{where}: weir has no {probe} httpGet"
            assert get["path"] == path, f"{where}: {probe} path {get['path']}, expected {path}"
            port = ports.get(get["port"], get["port"])
            assert port == ADMIN_PORT, f"{where}: {probe} on port {get['port']}, expected the admin port {ADMIN_PORT}"
        assert weir["resources"]["limits"].get("cpu"), f"{where}: weir needs a CPU limit"

        cm, mount = config_map_for(docs, spec)
        assert mount.get("readOnly") is True, f"{where}: config mount must be read-only"
        assert weir.get("args", [])[-2:] == ["--config", f"{CONFIG_DIR}/weir.toml"], weir.get("args")
        assert not re.search(r"-[0-9a-z]{10}$", cm["metadata"]["name"]), (
            f"{where}: ConfigMap {cm['metadata']['name']} has a hash suffix; use disableNameSuffixHash (hot reload)")

        config = weir_config(cm)
        grace = duration_seconds(config["service"]["shutdown_grace"])
        pre_stop = weir.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        assert spec["terminationGracePeriodSeconds"] > grace + pre_stop, (
            f"{where}: terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} must exceed "
            f"service.shutdown_grace {grace}s + preStop {pre_stop}s")
        for section, key in (("admin", "address"),):
            assert config[section][key].startswith("0.0.0.0:"), f"{where}: [{section}] {key} must be explicit 0.0.0.0 (probes)"
        for r in config.get("receivers", {}).values():
            for transport in ("grpc", "http"):
                assert "address" in r.get(transport, {}), f"{where}: receiver {transport} address must be explicit"

        # ${env:X} without a default must come from the container; secret-looking
        # variables only from a Secret.
        env = {e["name"]: e for e in weir.get("env", [])}
        for var, default in ENV_REF.findall(cm["data"]["weir.toml"]):
            if not default:
                assert var in env, f"{where}: weir.toml uses ${{env:{var}}} but the container does not set {var}"
        for var, e in env.items():
            if SECRETISH_KEY.search(var):
                assert "secretKeyRef" in e.get("valueFrom", {}), f"{where}: {var} must come from a Secret (secretKeyRef)"

        if variant.startswith("sidecar"):
            assert weir in spec.get("initContainers", []) and weir.get("restartPolicy") == "Always", (
                f"{where}: weir must be a native sidecar (initContainers, restartPolicy: Always)")
            assert all(r[t]["address"].startswith("127.0.0.1:") for r in config["receivers"].values()
                       for t in ("grpc", "http")), f"{where}: a sidecar receives on localhost only"


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_secrets_in_config_maps(variant):
    docs = render(variant)
    assert not objects(docs, "Secret"), f"{variant}: Secrets must not be rendered from the repository"
    assignment = re.compile(r'^\s*"?([A-Za-z0-9_.\-]+)"?\s*=\s*"([^"]*)"')
    for cm in objects(docs, "ConfigMap"):
        for key, text in cm.get("data", {}).items():
            pairs = [assignment.match(line) for line in text.splitlines()]
            # Also keys inside inline tables: headers = { "authorization" = "..." }.
            pairs += list(re.finditer(r'"?([A-Za-z0-9_.\-]+)"?\s*=\s*"([^"]*)"', text))
            for m in filter(None, pairs):
                k, v = m.group(1), m.group(2)
                if SECRETISH_KEY.search(k):
                    literal = ENV_REF.sub("", v).replace("Bearer", "").replace("Basic", "").strip()
                    assert not literal, (f"{variant}: ConfigMap {cm['metadata']['name']} {key}: {k} = {v!r} looks like "
                                         "a secret value; take it from a Secret through ${env:...}")


def test_gateway_shape():
    docs = render("gateway")
    dep = one(docs, "Deployment", "weir-gateway")
    spec = dep["spec"]["template"]["spec"]
    # The HPA owns the replica count (an applied `replicas` would reset it on every apply).
    assert "replicas" not in dep["spec"], "leave spec.replicas to the HorizontalPodAutoscaler"
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys, keys

    svc = one(docs, "Service", "weir-gateway")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["otlp-grpc"]["port"] == 4317 and ports["otlp-grpc"]["appProtocol"] == "grpc"
    assert ports["otlp-http"]["port"] == 4318
    assert ports["admin"]["port"] == ADMIN_PORT
    headless = one(docs, "Service", "weir-gateway-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert {p["name"] for p in headless["spec"]["ports"]} == {"otlp-grpc", "otlp-http"}

    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] >= 2
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    one(docs, "PodDisruptionBudget")

    np = one(docs, "NetworkPolicy")
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    by_port = {}
    for rule in np["spec"]["ingress"]:
        for p in rule["ports"]:
            by_port.setdefault(p["port"], []).extend(rule["from"])
    assert set(by_port) == {"otlp-grpc", "otlp-http", "admin"}, by_port
    assert by_port["admin"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert all("namespaceSelector" in f for f in by_port["otlp-grpc"] + by_port["otlp-http"])
    egress_ports = {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}
    assert 53 in egress_ports and 4317 in egress_ports, egress_ports

    cm = one(docs, "ConfigMap", "weir-gateway-config")
    assert "sample.wasm" in cm.get("binaryData", {}), "the small plugin travels in binaryData"
    size = sum(len(v) for v in cm.get("data", {}).values()) + sum(
        len(base64.b64decode(v)) for v in cm.get("binaryData", {}).values())
    assert size < 1024 * 1024, f"ConfigMap weir-gateway-config is {size} bytes; the limit is 1 MiB"

    dashboards = one(docs, "ConfigMap", "weir-grafana-dashboard")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboards["data"]["weir-dashboard.json"])["uid"] == "weir-overview"


def test_large_plugin_variants_mount_the_same_path():
    for variant in ("gateway+large-plugins-init", "gateway+large-plugins-image-volume"):
        docs = render(variant)
        spec = one(docs, "Deployment", "weir-gateway")["spec"]["template"]["spec"]
        (weir,) = weir_containers(spec)
        mounts = {m["name"]: m for m in weir["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert mounts["large-plugins"]["readOnly"] is True
        if variant.endswith("init"):
            assert mounts["large-plugins"]["mountPath"] == "/opt/weir/plugins"
            assert "emptyDir" in volumes["large-plugins"]
            (copy,) = spec["initContainers"]
            assert copy["name"] == "copy-plugins" and copy["command"][-1] == "/opt/weir/plugins/"
            assert "restartPolicy" not in copy, "the copy runs to completion before weir starts"
        else:
            # The image's /plugins appears at /opt/weir/plugins, as with the copy.
            assert mounts["large-plugins"]["mountPath"] == "/opt/weir"
            assert volumes["large-plugins"]["image"]["reference"].startswith("ghcr.io/")
            assert not spec.get("initContainers")


# ---------------------------------------------------------------------------
# the rendered configs pass weir validate


def materialize_config(cm: dict, into: Path) -> Path:
    """Writes the ConfigMap's files as kubelet would into `into`, with the image's
    paths (/etc/weir, /usr/share/weir/plugins) pointed at this checkout."""
    into.mkdir(parents=True, exist_ok=True)
    for name, b64 in cm.get("binaryData", {}).items():
        (into / name).write_bytes(base64.b64decode(b64))
    for name, text in cm.get("data", {}).items():
        if name == "weir.toml":
            text = text.replace(IMAGE_PLUGIN_DIR, str(plugin_dir()) + "/").replace(CONFIG_DIR + "/", str(into) + "/")
        (into / name).write_text(text)
    return into / "weir.toml"


@pytest.mark.parametrize("variant", ["gateway", "sidecar"])
def test_rendered_config_passes_weir_validate(variant, tmp_path):
    binary = weir_bin()
    assert binary.exists(), f"weir binary not found at {binary}; run `cargo build --release -p weir` or set WEIR_BIN"
    for plugin in ("redact", "sample", "enrich", "route"):
        plugin_wasm(plugin)  # fails clearly when plugins/build.sh has not run
    docs = render(variant)
    for name, spec in pod_specs(docs):
        if not weir_containers(spec):
            continue
        cm, _ = config_map_for(docs, spec)
        path = materialize_config(cm, tmp_path / cm["metadata"]["name"])
        (weir,) = weir_containers(spec)
        env = dict(os.environ)
        env.update({e["name"]: f"test-{e['name'].lower()}" for e in weir.get("env", [])})
        r = run([str(binary), "validate", "--config", str(path)], env=env)
        assert r.returncode == 0, f"{variant}: weir validate on ConfigMap {cm['metadata']['name']}:\n{r.stderr}"
        assert "configuration OK" in r.stdout


# ---------------------------------------------------------------------------
# alert rules and dashboard


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["spec"]["groups"]


def alerts() -> list[dict]:
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def test_alert_rules_pass_promtool_check_and_unit_tests(tmp_path):
    rules = tmp_path / "weir-rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    r = run([promtool(), "check", "rules", str(rules)])
    assert r.returncode == 0, f"promtool check rules:\n{r.stdout}\n{r.stderr}"
    r = run([promtool(), "test", "rules", str(tmp_path / RULE_TESTS.name)], cwd=tmp_path)
    assert r.returncode == 0, f"promtool test rules:\n{r.stdout}\n{r.stderr}"
    # Every alert has a unit test that expects it to fire.
    tested = set(re.findall(r"alertname:\s*(\w+)", RULE_TESTS.read_text()))
    fired = set()
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for t in test.get("alert_rule_test", []):
            if t.get("exp_alerts"):
                fired.add(t["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names <= fired, f"alerts without a unit test that fires them: {sorted(names - fired)}"
    assert tested <= names, f"unit tests for alerts that do not exist: {sorted(tested - names)}"


def test_every_alert_is_documented_with_a_runbook():
    doc = DEPLOY_DOC.read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", doc, re.M)}
    for a in alerts():
        ann = a.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), f"{a['alert']}: needs a summary and a description"
        assert a.get("labels", {}).get("severity") in {"warning", "critical"}, f"{a['alert']}: severity"
        url = ann.get("runbook_url", "")
        assert url == f"docs/deploy.md#{a['alert'].lower()}", f"{a['alert']}: runbook_url {url!r}"
        assert a["alert"].lower() in anchors, f"{a['alert']}: no section `### {a['alert']}` in docs/deploy.md"


def test_dashboard_is_well_formed():
    d = json.loads(DASHBOARD.read_text())
    assert d["uid"] == "weir-overview" and d["title"]
    assert {v["name"] for v in d["templating"]["list"]} == {"datasource", "namespace", "job"}
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for topic in ("accepted", "sent", "refused", "dropped", "queue fill", "plugin call latency",
                  "plugin failures", "reloads", "archive rows"):
        assert topic in titles, f"the dashboard has no panel about {topic!r}"
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]


def used_metric_names() -> dict[str, set[str]]:
    """metric name -> where it is used (alert/record names, dashboard panel titles)."""
    used: dict[str, set[str]] = {}
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}

    def scan(expr: str, where: str) -> None:
        for name in re.findall(r"\b((?:weir|kube)_[a-zA-Z0-9_]+)\b", expr):
            used.setdefault(name, set()).add(where)
        if re.search(r"\bup\s*\{", expr):
            used.setdefault("up", set()).add(where)
        for name in re.findall(r"\b(weir:[a-zA-Z0-9_:]+)", expr):
            assert name in recorded, f"{where} uses {name}, which no recording rule defines"

    for g in rule_groups():
        for r in g["rules"]:
            scan(r["expr"], f"rule {r.get('alert') or r.get('record')}")
    for p in json.loads(DASHBOARD.read_text())["panels"]:
        for t in p.get("targets", []):
            scan(t["expr"], f"dashboard panel {p['title']!r}")
    for v in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if isinstance(v.get("query"), dict):
            scan(v["query"]["query"], f"dashboard variable {v['name']}")
    return used


# ---------------------------------------------------------------------------
# every metric used exists on a running weir

CHAOS_CONFIG = """
[service]
shutdown_grace = "5s"
plugin_cache_dir = {cache}

[admin]
address = "127.0.0.1:{{admin_port}}"

[receivers.otlp]
type = "otlp"
grpc = {{{{ address = "127.0.0.1:{{grpc_port}}" }}}}
http = {{{{ address = "127.0.0.1:{{http_port}}", max_connections = 4 }}}}

# The first call of each instance behaves; later ones loop past the timeout
# (every 5th), trap and are dropped (every 4th), trap and are rejected (every 2nd).
# One instance serves all three pipelines in turn, so the periods are coprime
# with 3: each signal gets its share of every failure.
[plugins.slow]
path = {misbehave}
on_error = "pass"
timeout = "50ms"
instances = 1
config = {{{{ mode = "loop", every = 5 }}}}

[plugins.dropper]
path = {misbehave}
on_error = "drop"
instances = 1
config = {{{{ mode = "trap", every = 4 }}}}

[plugins.rejecter]
path = {misbehave}
on_error = "reject"
instances = 1
config = {{{{ mode = "trap", every = 2 }}}}

[exporters.backend]
type = "otlp_grpc"
endpoint = "{{sink}}"
timeout = "5s"
batch = {{{{ max_items = 8192, timeout = "20ms" }}}}
retry = {{{{ enabled = true, initial_interval = "20ms", max_interval = "50ms", max_elapsed = "10s" }}}}

[exporters.archive]
type = "parquet"
path = {archive}
max_age = "1s"
batch = {{{{ timeout = "20ms" }}}}

[exporters.archive_bad]
type = "parquet"
path = {archive_bad}
max_age = "1s"
batch = {{{{ timeout = "20ms" }}}}

[pipelines.traces]
receivers = ["otlp"]
plugins = ["slow", "dropper", "rejecter"]
exporters = ["backend", "archive", "archive_bad"]

[pipelines.logs]
receivers = ["otlp"]
plugins = ["slow", "dropper", "rejecter"]
exporters = ["backend", "archive", "archive_bad"]

[pipelines.metrics]
receivers = ["otlp"]
plugins = ["slow", "dropper", "rejecter"]
exporters = ["backend"]
"""


def _metrics_request(n: int) -> bytes:
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    now = time.time_ns()
    points = [metrics_pb2.NumberDataPoint(time_unix_nano=now + i, as_int=i) for i in range(n)]
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metrics_pb2.Metric(
            name="e2e.gauge", gauge=metrics_pb2.Gauge(data_points=points))])])]).SerializeToString()


BODIES = {
    "traces": lambda: make_trace_request(3).SerializeToString(),
    "logs": lambda: logs_request(({"service.name": "e2e"}, [make_log("hello"), make_log("world")])).SerializeToString(),
    "metrics": lambda: _metrics_request(3),
}
NOUNS = {"traces": "spans", "logs": "log_records", "metrics": "metric_points"}


def test_every_metric_used_by_alerts_and_dashboard_exists(start_weir, sink, tmp_path, plugin_cache_dir):
    used = used_metric_names()
    assert any(n.startswith("weir_") for n in used), "no weir metric found in the rules and the dashboard"
    unknown_external = {n for n in used if not n.startswith("weir_")} - EXTERNAL_METRICS
    assert not unknown_external, f"metrics from outside weir not in EXTERNAL_METRICS: {unknown_external}"

    archive_bad = tmp_path / "archive-bad"
    config = CHAOS_CONFIG.format(
        cache=toml_str(str(plugin_cache_dir)), misbehave=toml_str(str(plugin_wasm("misbehave"))),
        archive=toml_str(str(tmp_path / "archive")), archive_bad=toml_str(str(archive_bad)))
    weir = start_weir(config_text=config, ready_timeout=60)

    def exposed() -> set[str]:
        return {s.name for s in parse_prometheus(requests.get(weir.admin_url("/metrics"), timeout=5).text)}

    # 1. An export retried (UNAVAILABLE) and then refused for good (INVALID_ARGUMENT),
    #    once per signal; the archives write the same data.
    for signal_name, noun in NOUNS.items():
        def failed_once():
            if f"weir_exporter_send_failed_{noun}_total" in exposed():
                return True
            if not sink.fail_next:
                sink.fail_next.extend([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT])
            weir.post(signal_name, BODIES[signal_name]())
            return False

        wait_until(failed_once, 30, f"weir_exporter_send_failed_{noun}_total", interval=0.2)
    sink.fail_next.clear()

    # 2. The bad archive's directory turns into a file: its writes fail and the
    #    rows of its open files are lost.
    shutil.rmtree(archive_bad)
    archive_bad.write_text("not a directory")

    # 3. Plugin timeouts, traps, drops and rejections on every signal.
    for _ in range(12):
        for signal_name in NOUNS:
            weir.post(signal_name, BODIES[signal_name]())

    # 4. An invalid request; connections beyond the HTTP listener's cap of 4.
    assert weir.post("traces", b"\xff\xff not protobuf").status_code == 400
    held = [socket.create_connection((LOOPBACK, weir.http_port), timeout=5) for _ in range(8)]
    try:
        wait_until(lambda: "weir_receiver_connections_refused_total" in exposed(), 10,
                   "weir_receiver_connections_refused_total")
    finally:
        for s in held:
            s.close()

    # 5. A reload that fails, then the good config again.
    good = weir.config_path.read_text()
    weir.config_path.write_text(good.replace("[pipelines.metrics]", "[pipelines.metrics]\nbogus = 1", 1))
    r = requests.post(weir.admin_url("/reload"), timeout=30)
    assert r.status_code == 422, r.text
    weir.config_path.write_text(good)
    r = requests.post(weir.admin_url("/reload"), timeout=30)
    assert r.status_code == 200, r.text

    weir_names = {n for n in used if n.startswith("weir_")}

    def missing() -> set[str]:
        return weir_names - exposed()

    def all_exposed() -> bool:
        if not missing():
            return True
        for signal_name in NOUNS:  # more of step 3, should a failure mode not have come round yet
            weir.post(signal_name, BODIES[signal_name]())
        return False

    try:
        wait_until(all_exposed, 20, "every metric used by the alerts and the dashboard", interval=0.2)
    except AssertionError:
        lines = [f"  {n}: used by {', '.join(sorted(used[n]))}" for n in sorted(missing())]
        pytest.fail("metrics used by deploy/ but not exposed by a running weir (renamed or removed?):\n"
                    + "\n".join(lines), pytrace=False)


def test_docs_apply_large_config_maps_server_side():
    """kubectl's client-side apply keeps a copy of every object in an annotation
    (at most 256 KiB); a ConfigMap with a plugin in binaryData is larger, so the
    guide must apply server-side."""
    docs = render("gateway")
    cm = one(docs, "ConfigMap", "weir-gateway-config")
    encoded = sum(len(v) for v in cm.get("binaryData", {}).values())
    if encoded > 256 * 1024:
        guide = DEPLOY_DOC.read_text()
        applies = re.findall(r"kubectl apply[^\n]*", guide)
        assert applies and all("--server-side" in a for a in applies), (
            "docs/deploy.md: every `kubectl apply` must use --server-side (the ConfigMap's binaryData is "
            f"{encoded} bytes of base64, over the 256 KiB last-applied annotation): {applies}")
