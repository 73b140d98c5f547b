"""`weir plugin new`: the project it writes passes its own test as it is, and the
component it builds passes through `weir plugin test` (Rust, Python, JavaScript, C and Go)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from otlp_helpers import weir_bin


def new(tmp_path: Path, lang: str, name: str) -> Path:
    r = subprocess.run([str(weir_bin()), "plugin", "new", "--lang", lang, name, "--dir", str(tmp_path / name)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return tmp_path / name


def check_output(wasm: Path, project: Path, cache: Path) -> None:
    r = subprocess.run([str(weir_bin()), "plugin", "test", "--wasm", str(wasm), "--cache-dir", str(cache),
                        "--input", str(project / "sample.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    spans = json.loads(r.stdout)["default"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert spans[0]["attributes"][0]["value"]["stringValue"] == "***", "the template masks emails"


def test_a_new_python_plugin_tests_and_builds(tmp_path, plugin_cache_dir):
    project = new(tmp_path, "python", "my-filter")
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=project,
                          capture_output=True, text=True, timeout=300)
    assert test.returncode == 0, test.stdout[-2000:] + test.stderr[-2000:]
    tool = Path(sys.executable).parent / "componentize-py"
    build = subprocess.run([str(tool), "-d", "wit", "-w", "plugin", "componentize", "app", "-o", "my-filter.wasm"],
                           cwd=project, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    check_output(project / "my-filter.wasm", project, plugin_cache_dir)


def test_a_new_rust_plugin_tests_and_builds(tmp_path, plugin_cache_dir):
    project = new(tmp_path, "rust", "my-filter")
    # A target directory shared across runs keeps the dependencies compiled.
    env = {**os.environ, "CARGO_TARGET_DIR": str(Path(__file__).resolve().parents[2] / "target" / "plugin-new")}
    for args in (["test", "--quiet"], ["build", "--release", "--quiet", "--target", "wasm32-wasip2"]):
        r = subprocess.run(["cargo", *args], cwd=project, capture_output=True, text=True, timeout=900, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
    wasm = Path(env["CARGO_TARGET_DIR"]) / "wasm32-wasip2" / "release" / "my_filter.wasm"
    check_output(wasm, project, plugin_cache_dir)


def test_a_name_that_cannot_be_a_plugin_is_refused(tmp_path):
    r = subprocess.run([str(weir_bin()), "plugin", "new", "--lang", "python", "My Plugin", "--dir", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "lowercase letters" in r.stderr, r.stderr


def test_a_new_js_plugin_tests_and_builds(tmp_path, plugin_cache_dir):
    project = new(tmp_path, "js", "my-filter")
    # npm's cache (filled by run-all's `npm ci` of plugins/sdk-js) makes this quick.
    for args in (["install", "--no-audit", "--no-fund", "--loglevel=error"], ["test"], ["run", "build"]):
        r = subprocess.run(["npm", *args], cwd=project, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    check_output(project / "my-filter.wasm", project, plugin_cache_dir)


def test_a_new_c_plugin_tests_and_builds(tmp_path, plugin_cache_dir):
    project = new(tmp_path, "c", "my-filter")
    wasm_tools = Path(sys.executable).parent / "wasm-tools"
    for args in (["-s", "test"], ["-s", f"WASM_TOOLS={wasm_tools}"]):
        r = subprocess.run(["make", *args], cwd=project, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    check_output(project / "my-filter.wasm", project, plugin_cache_dir)


def test_a_new_go_plugin_tests_and_builds(tmp_path, plugin_cache_dir):
    project = new(tmp_path, "go", "my-filter")
    venv_bin = Path(sys.executable).parent
    target = Path(__file__).resolve().parents[2] / "target"
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "GOCACHE": str(target / "go" / "cache"),
           "GOPATH": str(target / "go" / "path"), "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    for args in (["go", "test", "./..."], ["bash", "build.sh"]):
        r = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=600, env=env)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    check_output(project / "my-filter.wasm", project, plugin_cache_dir)
