"""GET /openapi.json (API.md "Operations") and the checker that holds every black-box test
to it (openapi_check.py): the served document is docs/openapi.json byte for byte; every
path item's methods are the server's; and the checker rejects what does not conform (fed
fake answers here, and end to end in a pytest run of its own)."""

import json
import subprocess
import sys

import pytest
import requests

import openapi_check
from seckill_harness import SECKILL_BIN, JSON_CT, describe, require_binary, seg

DOCUMENT = openapi_check.DOCUMENT_PATH
# Paths another module serves that this build may lack (the live sale view, --status-page).
MAYBE_OFF = {"/status", "/status.json"}


def document():
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


# -- the served document -----------------------------------------------------------------


def test_served_document_is_docs_openapi_json(client):
    r = client.request("GET", "/openapi.json")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == JSON_CT
    assert r.content == DOCUMENT.read_bytes(), \
        "the binary serves another document than docs/openapi.json: rebuild"
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert r.json()["openapi"].startswith("3.1.")


def test_head_and_other_methods(client):
    head = client.request("HEAD", "/openapi.json")
    assert head.status_code == 200 and head.content == b"", describe(head)
    assert int(head.headers["Content-Length"]) == DOCUMENT.stat().st_size
    assert head.headers["Content-Type"] == JSON_CT
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = client.request(method, "/openapi.json", data="{}")
        assert r.status_code == 405, describe(r)
        assert r.headers["Allow"] == "GET, HEAD", describe(r)
        assert r.json() == {"errMsg": "Method not allowed."}


def test_query_and_trailing_slash(client):
    for path in ("/openapi.json?x=1", "/openapi.json/", "/openapi%2Ejson"):
        r = client.request("GET", path)
        assert r.status_code == 200 and r.content == DOCUMENT.read_bytes(), path


def test_info_version_is_the_binary_version():
    require_binary()
    out = subprocess.run([SECKILL_BIN, "--version"], capture_output=True, text=True,
                         timeout=10)
    assert document()["info"]["version"] in out.stdout + out.stderr, out


def sample_path(template):
    return (template.replace("{username}", seg("nobody"))
            .replace("{seller}", seg("nobody")).replace("{name}", seg("x")))


@pytest.mark.parametrize("template", sorted(document()["paths"]))
def test_each_path_item_lists_the_methods_the_server_allows(client, template):
    """PUT is no method of any route: the 405's Allow must be exactly the path item's
    methods (the checker compares them), and an OPTIONS without preflight is 405 too."""
    path = sample_path(template)
    for method in ("PUT", "OPTIONS"):
        r = client.request(method, path)
        if template in MAYBE_OFF and r.status_code == 404:
            continue  # not served by this build, or --status-page off: declared as well
        assert r.status_code == 405, describe(r)


# -- the checker, fed fake answers -------------------------------------------------------


@pytest.fixture(scope="module")
def checker():
    return openapi_check.Checker(document())


def answer(checker, method, path, status, body=None, headers=None, content_type=JSON_CT):
    """The checker's problems with one made-up answer."""
    all_headers = requests.structures.CaseInsensitiveDict(headers or {})
    if body is not None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        if content_type is not None:
            all_headers.setdefault("Content-Type", content_type)
    _, problems = checker.check(method, "http://127.0.0.1:1" + path, status, all_headers,
                                body if body is not None else b"")
    return problems


TOKEN = "aaa.bbb.ccc"


def test_conforming_answers_pass(checker):
    """The controls of the tests below: each is one change away from one of them."""
    assert answer(checker, "GET", "/healthz", 200, {"errMsg": "", "status": "ok"}) == []
    assert answer(checker, "PATCH", "/api/users/s/coupons/c", 204,
                  headers={"X-Seckill-Reason": "sold-out"}) == []
    assert answer(checker, "PATCH", "/api/users/s/coupons/c", 429,
                  {"errMsg": "Too many requests."}, {"Retry-After": "2"}) == []
    assert answer(checker, "POST", "/api/auth/", 200, {"kind": "saler", "errMsg": ""},
                  {"Authorization": TOKEN}) == []
    assert answer(checker, "GET", "/api/users/s%2Fx/coupons?page=2", 200,
                  {"errMsg": "", "data": [{"name": "n", "stock": 1, "description": "d",
                                           "amount": 2, "left": 1}]}) == []
    assert answer(checker, "GET", "/api/users/c/coupons", 200,
                  {"errMsg": "", "data": [{"name": "n", "stock": 1, "description": "d",
                                           "seller": "s"}]}) == []
    assert answer(checker, "POST", "/api/users", 400,
                  {"errMsg": "Unexpected value of kind, admin"}) == []
    assert answer(checker, "GET", "/no/such/path", 404, {"errMsg": "Not found."}) == []
    assert answer(checker, "DELETE", "/api/users/s/coupons", 405,
                  {"errMsg": "Method not allowed."}, {"Allow": "GET, HEAD, POST"}) == []
    assert answer(checker, "GET", "/metrics", 200, b"# HELP x\n",
                  content_type="text/plain; version=0.0.4") == []
    assert answer(checker, "HEAD", "/healthz", 200, headers={"Content-Length": "30"}) == []


@pytest.mark.parametrize("method, path, status", [
    ("PATCH", "/api/users/s/coupons/c", 200),   # the grab answers 201 or 204, never 200
    ("POST", "/api/users", 200),
    ("GET", "/healthz", 404),
    ("GET", "/no/such/path", 200),               # an unknown path only answers 404
    ("DELETE", "/api/users", 404),               # a known path's other methods: 405
    ("GET", "/api/users/%zz/coupons", 200),      # a bad escape routes nowhere
    ("GET", "/api/users//coupons", 200),         # neither does an empty segment
])
def test_undeclared_status_is_rejected(checker, method, path, status):
    problems = answer(checker, method, path, status, {"errMsg": ""})
    assert problems and "status not declared" in problems[0], problems


@pytest.mark.parametrize("method, path, status, body", [
    ("GET", "/healthz", 200, {"errMsg": "", "status": "fine"}),
    ("GET", "/healthz", 200, {"status": "ok"}),                    # no errMsg
    ("POST", "/api/users", 201, {"errMsg": "", "extra": 1}),
    ("GET", "/api/users/s/coupons", 200, {"errMsg": "", "data": []}),      # empty is 204
    ("GET", "/api/users/s/coupons", 200,
     {"errMsg": "", "data": [{"name": "n", "stock": 1, "description": "d"}]}),
    ("GET", "/api/users/s/coupons", 200,
     {"errMsg": "", "data": [{"name": "n", "stock": "1", "description": "d", "seller": "s"}]}),
    ("POST", "/api/users", 400, {"errMsg": "Something else."}),
    ("POST", "/api/auth", 401, {"errMsg": "No such queryUser."}),          # kind missing
    ("PATCH", "/api/users/s/coupons/c", 401, {"errMsg": "Not found."}),
    ("GET", "/api/users/c/coupons", 401, {"errMsg": "Cannot check other customer."}),
])
def test_body_violating_its_schema_is_rejected(checker, method, path, status, body):
    problems = answer(checker, method, path, status, body)
    assert problems and "does not match its schema" in problems[0], problems


def test_headers_and_media_types_are_checked(checker):
    def one(*args, **kwargs):
        problems = answer(checker, *args, **kwargs)
        assert len(problems) == 1, problems
        return problems[0]

    grab = "/api/users/s/coupons/c"
    assert "X-Seckill-Reason missing" in one("PATCH", grab, 204)
    assert "X-Seckill-Reason" in one("PATCH", grab, 204, headers={"X-Seckill-Reason": "sold_out"})
    assert "Retry-After missing" in one("PATCH", grab, 429, {"errMsg": "Too many requests."})
    assert "Authorization missing" in one("POST", "/api/auth", 200,
                                          {"kind": "customer", "errMsg": ""})
    assert "Allow missing" in one("PUT", "/healthz", 405, {"errMsg": "Method not allowed."})
    assert "Allow" in one("PUT", "/healthz", 405, {"errMsg": "Method not allowed."},
                          {"Allow": "GET, HEAD, POST"})
    assert "not declared" in one("GET", "/healthz", 200, {"errMsg": "", "status": "ok"},
                                 content_type="application/json")  # no charset
    assert "not declared" in one("GET", "/metrics", 200, b"x", content_type="text/plain")
    assert "not JSON" in one("GET", "/healthz", 200, b"{oops")
    assert "where none is declared" in one("PATCH", grab, 204, b"x", content_type=None,
                                           headers={"X-Seckill-Reason": "ended"})
    assert "Content-Type" in one("GET", "/api/users/s/coupons", 204, content_type=None,
                                 headers={"Content-Type": JSON_CT})
    assert "Content-Length missing" in one("HEAD", "/healthz", 200)


# -- the checker end to end: a pytest run that must fail ---------------------------------


FAKE_CONFTEST = '''
import sys
sys.path.insert(0, {api_dir!r})
import openapi_check
from openapi_check import pytest_runtest_makereport  # noqa: F401
openapi_check.install()
'''

FAKE_SERVER_TEST = '''
import http.server, json, threading
import pytest, requests

ANSWERS = {"/healthz": (200, {"errMsg": "", "status": "ok"}),
           "/readyz": (299, {"errMsg": ""}),
           "/metrics": (200, {"errMsg": ""})}

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = ANSWERS[self.path]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass

@pytest.fixture(scope="module")
def url():
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()

def test_conforming(url):
    assert requests.get(url + "/healthz").status_code == 200

def test_undeclared_status(url):
    requests.get(url + "/readyz")            # the test asserts nothing: the checker fails it

def test_wrong_content_type_on_a_thread(url):
    t = threading.Thread(target=lambda: requests.get(url + "/metrics"))
    t.start(); t.join()
'''


def test_checker_fails_tests_end_to_end(tmp_path):
    """A fake server's answers through the real hook: the run fails, naming them."""
    (tmp_path / "conftest.py").write_text(FAKE_CONFTEST.format(
        api_dir=str(DOCUMENT.parents[1] / "tests" / "api")))
    (tmp_path / "test_fake.py").write_text(FAKE_SERVER_TEST)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-rf", str(tmp_path)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "2 failed, 1 passed" in text, text
    assert "GET /readyz -> 299: status not declared" in text, text
    assert "GET /metrics -> 200: Content-Type 'application/json; charset=utf-8' not declared" \
        in text, text
