"""Fixtures for the weir end-to-end suite.

- `sink`: a real OTLP/gRPC server recording what weir exports (see otlp_helpers.OtlpSink).
- `start_weir(**config)`: writes a config into the test's tmp_path, starts
  `weir run --config` (binary: $WEIR_BIN or target/release/weir), waits for /ready.
  At teardown every weir still running gets SIGTERM and must exit 0.
- `weir`: one weir with the default config (all three signals) exporting to `sink`.

When a test fails, weir's stderr is attached to the report.
"""

from __future__ import annotations

import pytest

from otlp_helpers import OtlpSink, Weir, free_port, render_config


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for w in getattr(item, "_weirs", []):
            rep.sections.append((f"weir stderr [{w.name}] ({w.stderr_path})", w.stderr()[-20000:] or "(empty)"))
            out = w.stdout()
            if out:
                rep.sections.append((f"weir stdout [{w.name}]", out[-5000:]))


@pytest.fixture
def sink():
    s = OtlpSink()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def start_weir(request, tmp_path, sink):
    """Starts weir. Keyword arguments go to otlp_helpers.render_config (ports and the
    sink endpoint are filled in); `config_text=` gives a whole config instead, with
    `{admin_port}`, `{grpc_port}`, `{http_port}` and `{sink}` placeholders."""
    started: list[Weir] = []
    request.node._weirs = started

    def start(config_text: str | None = None, ready_timeout: float = 20, **kwargs) -> Weir:
        admin_port, grpc_port, http_port = free_port(), free_port(), free_port()
        if config_text is None:
            kwargs.setdefault("sink_endpoint", sink.endpoint)
            config_text = render_config(admin_port=admin_port, grpc_port=grpc_port, http_port=http_port, **kwargs)
        else:
            config_text = config_text.format(
                admin_port=admin_port, grpc_port=grpc_port, http_port=http_port, sink=sink.endpoint
            )
        w = Weir(tmp_path, f"weir{len(started)}", config_text, admin_port, grpc_port, http_port)
        started.append(w)
        return w.start(ready_timeout)

    yield start

    problems = []
    for w in started:
        try:
            code = w.terminate()
        except AssertionError as e:
            problems.append(f"{w.name}: {e}")
            continue
        if code != 0:
            problems.append(f"{w.name}: exited with code {code} after SIGTERM (expected 0)")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def weir(start_weir):
    return start_weir()


@pytest.fixture(scope="session")
def plugin_cache_dir(tmp_path_factory):
    """One service.plugin_cache_dir for the whole run: each plugin component is
    compiled once, and every later weir loads the cached artifact."""
    return tmp_path_factory.mktemp("plugin-cache")
