"""The server held to its OpenAPI document (docs/openapi.json), in every black-box test.

install() wraps requests.Session.send, which every request of the `requests` library goes
through (requests.get() and friends make a Session too), so each answer a test receives
from the service is checked against the document, whatever the test itself asserts:

- the status must be declared for the path template and method (a path that matches no
  template gets the document's `x-seckill-routing.unknownPath` responses, a method its
  path item does not list `x-seckill-routing.otherMethod` or the path item's own
  `x-seckill-other-method`, and an `Allow` must name the path item's methods);
- every header the response declares `required` must be there, and match its schema;
- a declared body: the Content-Type must match a declared media type (parameters such as
  `charset=utf-8` included), and a JSON body must validate against its schema; no declared
  body: the answer has none, and no Content-Type. HEAD answers are checked for status and
  headers only.

Paths are matched as the server routes them: split on '/', each segment percent-decoded
(a segment that is empty or badly encoded matches nothing), one trailing '/' accepted where
the document says so, the query string left out. Only answers from loopback hosts are
checked (the servers the harness starts).

A violation does not raise inside the test (a test may catch exceptions, or run requests
on threads): it is recorded, and pytest_runtest_makereport turns the phase (setup, call or
teardown) in which it happened into a failure that lists it. The conftest.py files of
tests/api, tests/stress and tests/distributed import the hooks and call install().
SECKILL_OPENAPI_CHECK=0 leaves requests alone. The terminal summary says how many answers
were checked; SECKILL_OPENAPI_REPORT=1 adds the statuses seen per operation.

Raw-socket clients (seckill_harness.http_request, SocketReader: the hostile and HTTP
framing tests) are not checked: they speak bytes, not `requests`.
"""

import collections
import json
import os
import re
import threading
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def _decode_segment(segment):
    """The bytes of a percent-encoded segment, or None when an escape is bad (the server's
    rule: a '%' not followed by two hex digits matches no route)."""
    raw = segment.encode("latin-1", "replace") if isinstance(segment, str) else segment
    if b"%" in _PERCENT.sub(b"", raw):
        return None
    return _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _media_type(value):
    """("type/subtype", {param: value}) of a Content-Type, lower case."""
    parts = [p.strip() for p in value.split(";")]
    params = {}
    for part in parts[1:]:
        if "=" in part:
            key, _, val = part.partition("=")
            params[key.strip().lower()] = val.strip().strip('"').lower()
    return parts[0].lower(), params


class Checker:
    """Checks answers against one OpenAPI 3.1 document; validators are compiled once."""

    def __init__(self, document):
        self.document = document
        routing = document.get("x-seckill-routing", {})
        self.unknown_path = routing.get("unknownPath", {})
        self.other_method = routing.get("otherMethod", {})
        self.trailing_slash = bool(routing.get("trailingSlash"))
        self.templates = []
        for template, item in document["paths"].items():
            segments = template.split("/")[1:]
            literal = [not (s.startswith("{") and s.endswith("}")) for s in segments]
            expected = [_decode_segment(s) if lit else None
                        for s, lit in zip(segments, literal)]
            self.templates.append((template, expected, literal, item))
        # Concrete paths win over templated ones, as OpenAPI says.
        self.templates.sort(key=lambda t: -sum(t[2]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._resolver = jsonschema.RefResolver(base_uri="", referrer=document)
        self._validators = {}
        self._lock = threading.Lock()

    # -- lookups --------------------------------------------------------------------------

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            reference = node["$ref"]
            assert reference.startswith("#/"), f"only local references: {reference}"
            node = self.document
            for part in reference[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
            assert seen < 20, f"reference loop at {reference}"
        return node

    def match(self, path):
        """(template, path item) that `path` (raw, percent-encoded, no query) routes to,
        or (None, None)."""
        candidates = [path]
        if self.trailing_slash and path.endswith("/") and len(path) > 1:
            candidates.append(path[:-1])
        for candidate in candidates:
            if not candidate.startswith("/"):
                continue
            segments = candidate.split("/")[1:]
            for template, expected, literal, item in self.templates:
                if len(expected) != len(segments):
                    continue
                for segment, want, is_literal in zip(segments, expected, literal):
                    decoded = _decode_segment(segment)
                    if decoded is None:
                        break
                    if is_literal and decoded != want:
                        break
                    if not is_literal and decoded == b"":
                        break
                else:
                    return template, item
        return None, None

    def validator(self, schema):
        key = id(schema)
        with self._lock:
            found = self._validators.get(key)
            if found is None:
                cls = jsonschema.Draft202012Validator
                cls.check_schema(schema)
                found = (schema, cls(schema, resolver=self._resolver))
                self._validators[key] = found
        return found[1]

    # -- the check ------------------------------------------------------------------------

    def operation(self, method, path):
        """(label, the Responses object that applies, the path item when the method is
        not one it lists, else None)."""
        template, item = self.match(path)
        if item is None:
            return f"{method} <unknown path>", self.unknown_path, None
        operation = item.get(method.lower())
        if operation is None:
            responses = item.get("x-seckill-other-method", self.other_method)
            return f"{method} {template} <other method>", responses, item
        return f"{method} {template}", operation["responses"], None

    def check(self, method, url, status, headers, body):
        """The problems of one answer, as a list of strings (empty: conforming). `headers`
        is case-insensitive (requests' CaseInsensitiveDict); `body` None when not read."""
        method = method.upper()
        path = urlsplit(url).path or "/"
        label, responses, item = self.operation(method, path)
        where = f"{label} -> {status}"
        declared = (responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
                    or responses.get("default"))
        if declared is None:
            listed = ", ".join(sorted(responses)) or "none"
            return label, [f"{where}: status not declared (declared: {listed})"]
        declared = self.resolve(declared)
        problems = []
        for name, header in declared.get("headers", {}).items():
            header = self.resolve(header)
            value = headers.get(name)
            if value is None:
                if header.get("required"):
                    problems.append(f"{where}: required header {name} missing")
                continue
            if "schema" in header:
                error = jsonschema.exceptions.best_match(
                    self.validator(header["schema"]).iter_errors(value))
                if error is not None:
                    problems.append(f"{where}: header {name}: {value!r}: {error.message}")
        if item is not None and "Allow" in headers:
            allowed = {m.upper() for m in item if m in METHODS and m != "options"}
            sent = {m.strip().upper() for m in headers["Allow"].split(",") if m.strip()}
            if sent != allowed:
                problems.append(f"{where}: Allow {headers['Allow']!r}, the path item "
                                f"declares {', '.join(sorted(allowed))}")
        if method == "HEAD" or body is None:
            return label, problems
        content = declared.get("content")
        content_type = headers.get("Content-Type")
        if not content:
            if body:
                problems.append(f"{where}: a body of {len(body)} bytes where none is declared")
            if content_type is not None:
                problems.append(f"{where}: Content-Type {content_type!r} where no body is "
                                "declared")
            return label, problems
        if content_type is None:
            problems.append(f"{where}: no Content-Type (declared: {', '.join(content)})")
            return label, problems
        base, params = _media_type(content_type)
        for key, media in content.items():
            want_base, want_params = _media_type(key)
            if want_base == base and all(params.get(k) == v for k, v in want_params.items()):
                break
        else:
            problems.append(f"{where}: Content-Type {content_type!r} not declared "
                            f"(declared: {', '.join(content)})")
            return label, problems
        if "schema" not in media or not (base == "application/json" or base.endswith("+json")):
            return label, problems
        try:
            value = json.loads(body)
        except ValueError as error:
            problems.append(f"{where}: the body is not JSON ({error}): {body[:200]!r}")
            return label, problems
        errors = sorted(self.validator(media["schema"]).iter_errors(value),
                        key=lambda e: e.path)
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            at = "/".join(str(p) for p in best.absolute_path) or "(the body)"
            problems.append(f"{where}: the body does not match its schema at {at}: "
                            f"{best.message}; body {body[:300]!r}")
        return label, problems


# -- the requests hook and the pytest plumbing -------------------------------------------

_state = {"checker": None, "installed": False}
_lock = threading.Lock()
_pending = []  # violations not yet reported (text)
_stats = {"checked": 0, "bodies_skipped": 0, "violations": 0}
_seen = collections.Counter()  # (operation label, status)


def checker():
    if _state["checker"] is None:
        with open(DOCUMENT_PATH, encoding="utf-8") as f:
            _state["checker"] = Checker(json.load(f))
    return _state["checker"]


def observe(request, response, body_read=True):
    """Checks one answer to `request` (a requests.PreparedRequest) and records what is
    wrong. Does nothing unless install() ran, or for hosts that are not loopback."""
    if not _state["installed"] or response is None:
        return
    host = urlsplit(request.url).hostname
    if host not in LOOPBACK:
        return
    body = response.content if body_read else None
    label, problems = checker().check(request.method, request.url, response.status_code,
                                      response.headers, body)
    with _lock:
        _stats["checked"] += 1
        _stats["bodies_skipped"] += body is None
        _seen[(label, response.status_code)] += 1
        if problems:
            _stats["violations"] += len(problems)
            _pending.extend(problems)


def install():
    """Wraps requests.Session.send once (idempotent); SECKILL_OPENAPI_CHECK=0: no-op."""
    if _state["installed"] or os.environ.get("SECKILL_OPENAPI_CHECK", "1") == "0":
        return
    import requests

    checker()  # a broken document fails at once, not in the first test
    original = requests.Session.send

    def send(self, request, **kwargs):
        response = original(self, request, **kwargs)
        observe(request, response, body_read=not kwargs.get("stream", False))
        return response

    send.__wrapped__ = original
    requests.Session.send = send
    _state["installed"] = True


def take_pending():
    with _lock:
        taken = list(_pending)
        _pending.clear()
    return taken


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fails the phase (setup, call, teardown) in which answers violated the document."""
    outcome = yield
    report = outcome.get_result()
    problems = take_pending()
    if not problems:
        return
    text = (f"{len(problems)} answer(s) do not conform to docs/openapi.json "
            f"(tests/api/openapi_check.py):\n  " + "\n  ".join(problems[:50]))
    if len(problems) > 50:
        text += f"\n  ... and {len(problems) - 50} more"
    if report.passed:
        report.outcome = "failed"
        report.longrepr = text
    else:
        report.sections.append(("openapi", text))



def pytest_sessionfinish(session, exitstatus):
    """Violations after the last report (a late thread) still fail the run."""
    if _state["installed"] and take_pending():
        session.exitstatus = 1


_summary_done = []


def pytest_terminal_summary(terminalreporter):
    if not _state["installed"] or _summary_done:
        return
    _summary_done.append(True)
    write = terminalreporter.write_line
    write(f"openapi: {_stats['checked']} answers checked against docs/openapi.json "
          f"({len({label for label, _ in _seen})} operations, {len(_seen)} "
          f"operation+status pairs), {_stats['violations']} violations, "
          f"{_stats['bodies_skipped']} streamed bodies not read")
    if os.environ.get("SECKILL_OPENAPI_REPORT") == "1":
        for (label, status), count in sorted(_seen.items()):
            write(f"openapi:   {label} {status}: {count}")
