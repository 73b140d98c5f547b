"""A plugin author's loop: `weir plugin test` over an OTLP/JSON file, with the
compile cache on by default, the plugin named after its file, a trap shown with
its cause and the guest's backtrace, and `--repeat N` timings."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from otlp_helpers import REPO_ROOT, plugin_wasm, weir_bin

SPANS = REPO_ROOT / "examples" / "plugin-test" / "spans.json"
REDACTED = REPO_ROOT / "examples" / "plugin-test" / "spans.redacted.json"


def plugin_test(*args: str, cache: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    if cache is not None:
        environ["WEIR_PLUGIN_CACHE_DIR"] = str(cache)
    return subprocess.run([str(weir_bin()), "plugin", "test", *args], capture_output=True, text=True,
                          timeout=120, env=environ)


def test_expect_passes_and_a_difference_fails(tmp_path):
    ok = plugin_test("--wasm", str(plugin_wasm("redact")), "--input", str(SPANS), "--expect", str(REDACTED),
                     cache=tmp_path / "cache")
    assert ok.returncode == 0, ok.stderr
    assert "output matches" in ok.stderr
    wrong = tmp_path / "wrong.json"
    wrong.write_text(REDACTED.read_text().replace('"***"', '"alice@example.com"'))
    bad = plugin_test("--wasm", str(plugin_wasm("redact")), "--input", str(SPANS), "--expect", str(wrong),
                      cache=tmp_path / "cache")
    assert bad.returncode == 1 and "output differs" in bad.stderr, bad.stderr


def test_the_compile_cache_is_on_by_default_and_private(tmp_path):
    cache = tmp_path / "xdg" / "weir" / "plugins"
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "WEIR_PLUGIN_CACHE_DIR": ""}
    first = plugin_test("--wasm", str(plugin_wasm("redact")), "--input", str(SPANS), "--repeat", "5", **env)
    assert first.returncode == 0, first.stderr
    artifacts = sorted(p.name for p in cache.iterdir())
    assert len(artifacts) == 2 and artifacts[0].endswith(".cwasm") and artifacts[1] == "cache.key", artifacts
    assert stat.S_IMODE((cache / "cache.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    second = plugin_test("--wasm", str(plugin_wasm("redact")), "--input", str(SPANS), "--repeat", "5", **env)
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in cache.iterdir()) == artifacts, "the second run compiled nothing new"
    # --repeat reports each step, with the plugin named after its file.
    for line in ("weir_plugin_redact: compile", "instantiate + init", "chain over 1 spans x 5", "per call"):
        assert line in second.stderr, second.stderr
    none = plugin_test("--wasm", str(plugin_wasm("redact")), "--input", str(SPANS), "--no-cache",
                       "--cache-dir", str(tmp_path / "other"))
    assert none.returncode == 2 and "cannot be used with" in none.stderr, none.stderr


def test_a_trap_shows_its_cause_and_the_guest_backtrace(tmp_path):
    cfg = tmp_path / "trap.json"
    cfg.write_text('{"mode": "trap"}')
    r = plugin_test("--wasm", str(plugin_wasm("misbehave")), "--plugin-config", str(cfg), "--input", str(SPANS),
                    cache=tmp_path / "cache")
    assert r.returncode == 2, r.stderr
    name = plugin_wasm("misbehave").stem
    assert f"plugin {name} failed and its policy is reject: trapped: wasm trap: wasm `unreachable`" in r.stderr, r.stderr
    assert "wasm backtrace:" in r.stderr and "Misbehave" in r.stderr and "Caused by:" in r.stderr, r.stderr
    assert "misbehave: deliberate trap" in r.stderr, "the guest's own panic message, from its stderr"
