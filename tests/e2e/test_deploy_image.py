"""The container image (deploy/image): what is in it, and weir running inside it.

Runs only when WEIR_IMAGE names a built image (deploy/image/test.sh builds it
with buildah and runs this module; deploy/ci.sh runs that). The image is run with
`buildah run --isolation chroot` as uid 10001 on the host network, so its fixed
ports 4317, 4318 and 13133 must be free on this machine.

- the image holds exactly the static weir, the four reference plugins, CA
  certificates, passwd/group and the default config: no shell; only the cache
  and data directories are writable by uid 10001; OCI labels are set;
- weir starts on the image's default config as uid 10001, accepts traces and
  metrics (gRPC) and logs (HTTP) from the OpenTelemetry Python SDK and exports
  them to a sink named by WEIR_EXPORT_ENDPOINT; SIGTERM stops it with exit 0;
- the gateway and sidecar ConfigMaps (deploy/kubernetes), mounted at /etc/weir,
  pass `weir validate` inside the image, with the image's plugin paths."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests

from otlp_helpers import LOOPBACK, port_is_free, wait_until

IMAGE = os.environ.get("WEIR_IMAGE", "")
pytestmark = pytest.mark.skipif(
    not IMAGE, reason="WEIR_IMAGE is not set (deploy/image/test.sh builds the image and runs this module)")

UID = 10001
PORTS = (4317, 4318, 13133)
PLUGINS = [f"usr/share/weir/plugins/weir_plugin_{p}.wasm" for p in ("redact", "sample", "enrich", "route")]
EXPECTED_FILES = {
    "usr/bin/weir", "etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "etc/weir/weir.toml", *PLUGINS,
}
WRITABLE_DIRS = {"var/cache/weir", "var/lib/weir"}


def buildah(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    exe = shutil.which("buildah")
    if not exe:
        pytest.fail("`buildah` not found: install the Debian package `buildah`", pytrace=False)
    r = subprocess.run([exe, "--storage-driver", os.environ.get("BUILDAH_STORAGE_DRIVER", "vfs"), *args],
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, f"buildah {' '.join(args)} failed ({r.returncode}):\n{r.stderr}"
    return r


def image_config() -> dict:
    return json.loads(buildah("inspect", "--type", "image", IMAGE).stdout)["OCIv1"]["config"]


@pytest.fixture
def container():
    name = f"weir-test-{os.getpid()}-{time.monotonic_ns()}"
    buildah("from", "--quiet", "--name", name, IMAGE)
    yield name
    buildah("rm", name, check=False)


def run_in(container: str, cmd: list[str], *, env: dict | None = None, volumes: list[str] = (),
           timeout: float = 120) -> subprocess.CompletedProcess:
    args = ["run", "--isolation", "chroot", "--network", "host", "--user", f"{UID}:{UID}"]
    for k, v in (env or {}).items():
        args += ["--env", f"{k}={v}"]
    for v in volumes:
        args += ["--volume", v]
    return buildah(*args, container, "--", *cmd, timeout=timeout, check=False)


def test_image_metadata():
    cfg = image_config()
    assert cfg["User"] == f"{UID}:{UID}"
    assert cfg["Entrypoint"] == ["/usr/bin/weir"]
    assert cfg["Cmd"] == ["run", "--config", "/etc/weir/weir.toml"]
    assert set(cfg["ExposedPorts"]) == {"4317/tcp", "4318/tcp", "13133/tcp"}
    labels = cfg["Labels"]
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key} missing: {labels}"
    assert labels["org.opencontainers.image.version"] != "dev"


def test_image_contents_minimal_static_and_read_only(container):
    root = Path(buildah("mount", container).stdout.strip())
    try:
        files, dirs = set(), {}
        for path in root.rglob("*"):
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                dirs[rel] = st
            else:
                files.add(rel)
                assert stat.S_ISREG(st.st_mode), f"{rel}: not a regular file (symlink or device)"
                assert st.st_uid == 0 and not st.st_mode & 0o022, f"{rel}: writable by someone other than root"
        assert files == EXPECTED_FILES, f"unexpected files: {sorted(files ^ EXPECTED_FILES)}"
        assert not (root / "bin" / "sh").exists()
        for rel, st in dirs.items():
            if rel in WRITABLE_DIRS:
                assert st.st_uid == UID, f"{rel} should belong to {UID}"
            else:
                assert st.st_uid == 0 and not st.st_mode & 0o022, f"/{rel} is writable by uid {UID}"
        binary = root / "usr/bin/weir"
        assert binary.stat().st_mode & 0o111
        r = subprocess.run(["readelf", "-l", str(binary)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert "Requesting program interpreter" not in r.stdout, "weir in the image must be statically linked"
        passwd = (root / "etc/passwd").read_text()
        assert f"weir:x:{UID}:{UID}:" in passwd, passwd
        assert (root / "etc/ssl/certs/ca-certificates.crt").stat().st_size > 50_000
    finally:
        buildah("umount", container, check=False)


def _weir_processes() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline", "uids"]):
        cmd = p.info["cmdline"] or []
        if cmd[:2] == ["/usr/bin/weir", "run"]:
            out.append(p)
    return out


def test_runs_default_config_as_non_root_and_exports_sdk_telemetry(container, sink, tmp_path):
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    busy = [p for p in PORTS if not port_is_free(p, "0.0.0.0")]
    if busy:
        pytest.fail(f"ports {busy} are in use on this machine; the image listens on 4317, 4318 and 13133 "
                    "(host network). Stop what uses them and rerun.", pytrace=False)
    assert not _weir_processes(), "a weir from an earlier image run is still running"

    cfg = image_config()
    stderr_path = tmp_path / "image-weir.stderr"
    exe = shutil.which("buildah")
    cmd = [exe, "--storage-driver", os.environ.get("BUILDAH_STORAGE_DRIVER", "vfs"), "run", "--isolation", "chroot",
           "--network", "host", "--user", f"{UID}:{UID}",
           "--env", f"WEIR_EXPORT_ENDPOINT=http://{LOOPBACK}:{sink.port}", "--env", "RUST_LOG=info",
           container, "--", *cfg["Entrypoint"], *cfg["Cmd"]]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    admin = f"http://{LOOPBACK}:13133"
    try:
        def ready():
            assert proc.poll() is None, f"buildah run exited with {proc.returncode}:\n{stderr_path.read_text()}"
            try:
                return requests.get(admin + "/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, 60, lambda: f"weir in the image to be ready\n{stderr_path.read_text()}")
        procs = _weir_processes()
        assert len(procs) == 1, procs
        uids = procs[0].uids()
        assert (uids.real, uids.effective) == (UID, UID), f"weir runs as {uids}, expected uid {UID}"
        assert requests.get(admin + "/health", timeout=5).status_code == 200

        resource = Resource.create({"service.name": "image-test"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{LOOPBACK}:4317", insecure=True, timeout=10)))
        tracer = tracer_provider.get_tracer("image-test")
        for i in range(5):
            with tracer.start_as_current_span(f"image-span-{i}"):
                pass
        tracer_provider.shutdown()

        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=f"http://{LOOPBACK}:4318/v1/logs", timeout=10)))
        logger_provider.get_logger("image-test").emit(body="hello from the image test",
                                                      severity_number=SeverityNumber.INFO)
        logger_provider.shutdown()

        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{LOOPBACK}:4317", insecure=True, timeout=10), export_interval_millis=60_000)
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter_provider.get_meter("image-test").create_counter("image.requests").add(7)
        meter_provider.shutdown()  # exports once

        spans = sink.wait_for_spans(5, timeout=30)
        assert sorted(s.span.name for s in spans) == [f"image-span-{i}" for i in range(5)]
        logs = sink.wait_for_logs(1, timeout=30)
        assert logs[0].record.body.string_value == "hello from the image test"
        points = sink.wait_for_points(1, timeout=30)
        assert any(p.metric.name == "image.requests" and p.point.as_int == 7 for p in points), points
        metrics = requests.get(admin + "/metrics", timeout=5).text
        assert 'weir_exporter_sent_spans_total{exporter="backend"} 5' in metrics, metrics

        procs[0].send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, f"weir in the image exited {proc.returncode} after SIGTERM:\n{stderr_path.read_text()}"
        assert "weir stopped" in stderr_path.read_text()
    finally:
        if proc.poll() is None:
            for p in _weir_processes():
                p.kill()
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("variant", ["gateway", "sidecar"])
def test_kubernetes_configs_validate_inside_the_image(variant, container, tmp_path):
    from test_deploy_manifests import config_map_for, pod_specs, render, weir_containers

    docs = render(variant)
    checked = 0
    for _, spec in pod_specs(docs):
        if not weir_containers(spec):
            continue
        cm, _ = config_map_for(docs, spec)
        etc = tmp_path / cm["metadata"]["name"]
        etc.mkdir()
        for name, text in cm.get("data", {}).items():
            (etc / name).write_text(text)
        for name, b64 in cm.get("binaryData", {}).items():
            (etc / name).write_bytes(base64.b64decode(b64))
        for p in [etc, *etc.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (weir,) = weir_containers(spec)
        env = {e["name"]: f"test-{e['name'].lower()}" for e in weir.get("env", [])}
        r = run_in(container, ["/usr/bin/weir", "validate", "--config", "/etc/weir/weir.toml"], env=env,
                   volumes=[f"{etc}:/etc/weir:ro"])
        assert r.returncode == 0, f"{variant}: weir validate in the image:\n{r.stdout}\n{r.stderr}"
        assert "configuration OK" in r.stdout
        checked += 1
    assert checked == 1
