"""`weir validate --config FILE`: exit 0 and "OK" for a good file; exit 1 with every
error on stderr, one per line as `  - KEY: message`, for a bad one."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from otlp_helpers import REPO_ROOT, free_port, weir_bin

ERROR_LINE = re.compile(r"^\s+- (\S+): (.+)$")

GOOD = """\
[service]
shutdown_grace = "5s"

[admin]
address = "127.0.0.1:13133"

[receivers.otlp]
type = "otlp"
grpc = { address = "127.0.0.1:4317" }
http = { address = "127.0.0.1:4318" }

[exporters.backend]
type = "otlp_grpc"
endpoint = "http://127.0.0.1:14317"
timeout = "5s"

[exporters.debug]
type = "console"

[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend", "debug"]
"""

UNKNOWN_KEY = ('type = "otlp"\n', 'type = "otlp"\nbogus = 1\n', "receivers.otlp.bogus")
MISSING_EXPORTER = ('exporters = ["backend", "debug"]', 'exporters = ["backend", "nowhere"]',
                    "pipelines.traces.exporters[1]")
BAD_ADDRESS = ('grpc = { address = "127.0.0.1:4317" }', 'grpc = { address = "localhost:99999" }',
               "receivers.otlp.grpc.address")
BAD_DURATION = ('timeout = "5s"', 'timeout = "5 parsecs"', "exporters.backend.timeout")
ALL = [UNKNOWN_KEY, MISSING_EXPORTER, BAD_ADDRESS, BAD_DURATION]


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(weir_bin()), "validate", "--config", str(path)], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def error_keys(stderr: str) -> list[str]:
    return [m.group(1) for line in stderr.splitlines() if (m := ERROR_LINE.match(line))]


def assert_one_error_per_line(stderr: str) -> None:
    """Every line is either the summary (`FILE: N configuration errors`) or one whole
    error `  - KEY: message`; a message never runs onto a second line."""
    lines = [l for l in stderr.splitlines() if l.strip()]
    stray = [l for l in lines if not ERROR_LINE.match(l) and not re.search(r"configuration errors?$", l)]
    assert not stray, f"lines that are not one whole error each: {stray}\nstderr:\n{stderr}"


def apply(text: str, *edits) -> str:
    for old, new, _ in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_example_config_is_ok():
    r = validate(REPO_ROOT / "examples" / "configs" / "passthrough.toml")
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:{r.stdout}\nstderr:{r.stderr}"
    assert any("OK" in line for line in r.stdout.splitlines()), r.stdout


def test_good_inline_config_is_ok(tmp_path):
    r = validate(write(tmp_path, GOOD))
    assert r.returncode == 0, f"exit {r.returncode}\nstderr:{r.stderr}"
    assert "OK" in r.stdout


@pytest.mark.parametrize("edit", ALL, ids=["unknown-key", "missing-exporter", "bad-address", "bad-duration"])
def test_single_error_is_named(tmp_path, edit):
    r = validate(write(tmp_path, apply(GOOD, edit)))
    assert r.returncode == 1, f"exit {r.returncode}\nstdout:{r.stdout}\nstderr:{r.stderr}"
    keys = error_keys(r.stderr)
    assert_one_error_per_line(r.stderr)
    assert keys == [edit[2]], f"expected exactly [{edit[2]}], got {keys}\nstderr:\n{r.stderr}"


def test_bad_duration_message(tmp_path):
    r = validate(write(tmp_path, apply(GOOD, BAD_DURATION)))
    line = next(l for l in r.stderr.splitlines() if "exporters.backend.timeout" in l)
    assert re.match(r'^  - exporters\.backend\.timeout: invalid duration "5 parsecs" \(.+\)', line), line


def test_all_four_errors_reported_in_one_run(tmp_path):
    """The four errors of the contract's examples in one file, at the keys the contract
    names: all four must be reported, and nothing else."""
    r = validate(write(tmp_path, apply(GOOD, *ALL)))
    assert r.returncode == 1, f"exit {r.returncode}\nstderr:{r.stderr}"
    keys = error_keys(r.stderr)
    expected = {e[2] for e in ALL}
    assert expected <= set(keys), f"missing {sorted(expected - set(keys))}; got {keys}\nstderr:\n{r.stderr}"
    assert sorted(keys) == sorted(expected), f"unexpected extra errors: {keys}\nstderr:\n{r.stderr}"
    assert_one_error_per_line(r.stderr)


def test_four_errors_in_four_sections_reported_in_one_run(tmp_path):
    """Same, with each error in a different table (so no error can hide another one in
    the same table)."""
    text = GOOD + '\n[receivers.second]\ntype = "otlp"\nhttp = { address = "not an address" }\n'
    text = apply(text, MISSING_EXPORTER, BAD_DURATION)
    text = text.replace('shutdown_grace = "5s"', 'shutdown_grace = "5s"\ncolour = "blue"')
    r = validate(write(tmp_path, text))
    assert r.returncode == 1, f"exit {r.returncode}\nstderr:{r.stderr}"
    keys = error_keys(r.stderr)
    expected = {"service.colour", "pipelines.traces.exporters[1]", "receivers.second.http.address",
                "exporters.backend.timeout"}
    assert sorted(keys) == sorted(expected), f"got {keys}\nstderr:\n{r.stderr}"
    assert_one_error_per_line(r.stderr)


def test_missing_file_is_an_error(tmp_path):
    r = validate(tmp_path / "does-not-exist.toml")
    assert r.returncode == 1, r.returncode
    assert "does-not-exist.toml" in r.stderr


def test_invalid_toml_is_an_error(tmp_path):
    r = validate(write(tmp_path, GOOD + "\n[[[ broken\n"))
    assert r.returncode == 1, r.returncode
    assert r.stderr.strip(), "no message on stderr"


def test_env_references(tmp_path):
    text = GOOD.replace('"http://127.0.0.1:14317"', '"${env:WEIR_E2E_ENDPOINT}"')
    path = write(tmp_path, text)
    env = {k: v for k, v in os.environ.items() if k != "WEIR_E2E_ENDPOINT"}
    r = subprocess.run([str(weir_bin()), "validate", "--config", str(path)], capture_output=True, text=True,
                       timeout=30, env=env)
    assert r.returncode == 1 and "WEIR_E2E_ENDPOINT" in r.stderr, r.stderr
    env["WEIR_E2E_ENDPOINT"] = "http://127.0.0.1:24317"
    r = subprocess.run([str(weir_bin()), "validate", "--config", str(path)], capture_output=True, text=True,
                       timeout=30, env=env)
    assert r.returncode == 0, r.stderr


def test_run_refuses_an_invalid_config(tmp_path):
    """`weir run` with a bad config exits non-zero at once, naming the key, without serving."""
    admin = free_port()
    text = apply(GOOD, BAD_DURATION).replace("127.0.0.1:13133", f"127.0.0.1:{admin}")
    r = subprocess.run([str(weir_bin()), "run", "--config", str(write(tmp_path, text))], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "exporters.backend.timeout" in r.stderr, r.stderr
