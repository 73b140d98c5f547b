"""Rotel trace processor equivalent to weir's four-plugin benchmark chain.

Loaded by `rotel-agent --otlp-with-trace-processor bench/rotel_chain.py` in the
`rotel-chain` system of bench/passthrough.py. It does, in Python on Rotel's
processor SDK and in the same order, what bench/configs/{sample,redact,enrich,
route}.toml ask weir's reference plugins to do:

  sample  keep a trace when the low 56 bits of its trace id are at or above the
          threshold for rate 0.5 (the same rule as weir's sample plugin, so both
          keep the same traces), and keep every span of a trace that has an
          error span in the batch (weir's `keep_errors`);
  redact  mask attributes whose key matches `*.password` or `db.statement`, and
          mask emails, Luhn-valid card numbers, bearer tokens and JWTs found in
          any string attribute (resource, scope, span, event, link) or span name;
  enrich  set deployment.environment.name=prod on the resource and look up
          service.name in a table for team and cost_center (default team);
  route   decide the route by service.name. Rotel has one exporter here, so
          the decision is computed and not acted on (weir's bench config also
          sends every route to the same sink).

Rotel calls `process_spans` once per resource; bench/loadgen sends one resource
per request, so "per batch" means the same here as in weir.

Written the way a careful Python author would: precompiled regexes, cheap
substring prefilters before each regex, no per-item allocations beyond what the
SDK needs. Stdlib only.
"""

import fnmatch
import re

from rotel_sdk.open_telemetry.common.v1 import AnyValue, KeyValue

MASK = "***"
KEY_GLOBS = ["*.password", "db.statement"]
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
BEARER = re.compile(r"(?i)(?<![A-Za-z0-9_])bearer[ \t]+([A-Za-z0-9\-._~+/]+=*)")
CARD = re.compile(r"(?<![A-Za-z0-9_])[2-9][0-9]{3}(?:[ -]?[0-9]){9,15}(?![A-Za-z0-9_])")

TWO_56 = 1 << 56
THRESHOLD = round((1.0 - 0.5) * TWO_56)
STATUS_ERROR = 2

TEAMS = {
    "checkout-service": {"team": "payments", "cost_center": "cc-1001"},
    "cart-service": {"team": "shop", "cost_center": "cc-1002"},
}
DEFAULT = {"team": "unowned"}
ROUTES = {"payment-service": "payments"}

_key_cache: dict[str, bool] = {}


def key_blocked(key: str) -> bool:
    hit = _key_cache.get(key)
    if hit is None:
        hit = any(fnmatch.fnmatchcase(key, g) for g in KEY_GLOBS)
        _key_cache[key] = hit
    return hit


def luhn(digits: str) -> bool:
    total, double = 0, False
    for c in reversed(digits):
        d = ord(c) - 48
        if double:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        double = not double
    return total % 10 == 0


def _card(m: re.Match) -> str:
    digits = m.group(0).replace(" ", "").replace("-", "")
    return MASK if 13 <= len(digits) <= 19 and luhn(digits) else m.group(0)


def redact_text(text: str) -> str:
    if "@" in text:
        text = EMAIL.sub(MASK, text)
    if "eyJ" in text:
        text = JWT.sub(MASK, text)
    if "earer" in text or "EARER" in text:
        text = BEARER.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + MASK, text)
    if sum(c.isdigit() for c in text) >= 13:
        text = CARD.sub(_card, text)
    return text


def redact_attributes(attributes) -> None:
    for kv in attributes:
        if key_blocked(kv.key):
            kv.value = AnyValue(MASK)
            continue
        value = kv.value.value
        if isinstance(value, str):
            clean = redact_text(value)
            if clean is not value and clean != value:
                kv.value = AnyValue(clean)


def keep(span, error_traces: set) -> bool:
    tid = span.trace_id
    if tid in error_traces:
        return True
    if len(tid) != 16 or not any(tid):
        return True
    return int.from_bytes(tid[9:16], "big") >= THRESHOLD


def error_trace_ids(resource_spans) -> set:
    """Trace ids with an error span in this batch: all their spans are kept
    (weir's keep_errors does the same within a batch)."""
    out = set()
    for scope_spans in resource_spans.scope_spans:
        for span in scope_spans.spans:
            if span.status is not None and span.status.code == STATUS_ERROR:
                out.add(span.trace_id)
    return out


def process_spans(resource_spans) -> None:
    resource = resource_spans.resource
    service = None
    if resource is not None:
        redact_attributes(resource.attributes)
        for kv in resource.attributes:
            if kv.key == "service.name":
                service = kv.value.value
        # enrich
        resource.attributes.append(KeyValue.new_string_value("deployment.environment.name", "prod"))
        for key, value in TEAMS.get(service, DEFAULT).items():
            resource.attributes.append(KeyValue.new_string_value(key, value))
    # route: decided per resource; one exporter, so not acted on
    _route = ROUTES.get(service, "default")

    error_traces = error_trace_ids(resource_spans)
    for scope_spans in resource_spans.scope_spans:
        if scope_spans.scope is not None:
            redact_attributes(scope_spans.scope.attributes)
        kept = []
        for span in scope_spans.spans:
            if not keep(span, error_traces):
                continue
            name = redact_text(span.name)
            if name != span.name:
                span.name = name
            redact_attributes(span.attributes)
            for event in span.events:
                redact_attributes(event.attributes)
            for link in span.links:
                redact_attributes(link.attributes)
            kept.append(span)
        scope_spans.spans = kept
