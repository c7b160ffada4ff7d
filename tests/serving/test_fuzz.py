"""Property-based HTTP fuzzing from the service's own OpenAPI document (schemathesis), the way users
will point fuzzers at it: no request the document allows, nor one it forbids, nor any body in any
content type, may produce a 5xx. Two targets: the app in process on its SQLite log, and a real
`bentoml serve` process on a PostgreSQL log (which refuses what SQLite takes, NUL in text among it)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import API_TOKEN

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
_PASSED = ("method", "url", "headers", "params", "json", "data", "content", "files")
FUZZ = settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", params=["in-process-sqlite", "server-postgresql"])
def target(request, client, registry, tmp_path_factory):
    """``(client, base_url)``: where the fuzzer's requests go."""
    if request.param == "in-process-sqlite":
        yield client, "http://testserver"
        return
    import httpx

    from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready

    pg_cluster = request.getfixturevalue("pg_cluster")      # skips, with the reason, where PostgreSQL is absent
    port = free_port()
    env = server_env(tracking_uri=registry["tracking_uri"], events_db=pg_cluster.new_database(), poll_seconds=0)
    env.update({"GUANXI_API_TOKEN": API_TOKEN, "GUANXI_ADMIN_TOKEN": "admin-secret"})
    proc = start_server("127.0.0.1", port, env, log=tmp_path_factory.mktemp("fuzz-pg") / "server.log")
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=180)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers=AUTH, timeout=30) as real:
            yield real, base
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def schema(target):
    import schemathesis

    # From the document the app serves, but sent through the target's own client: schemathesis's
    # ASGI transport would run the app's shutdown (the in-process app is built once per session).
    return schemathesis.openapi.from_dict(target[0].get("/docs.json").json())


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_request_from_the_openapi_document_is_a_server_error(target, schema, mode):
    client, base = target
    from schemathesis.generation import GenerationMode

    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/recommend", "/feedback", "/settings", "/admin/reload"}
    if mode == "negative":      # only operations with a body have something to violate
        operations = [op for op in operations if op.path in ("/recommend", "/feedback", "/settings")]
    for op in operations:
        @FUZZ
        @given(case=op.as_strategy(generation_mode=GenerationMode(mode)))
        def check(case) -> None:
            kwargs = case.as_transport_kwargs(base_url=base, headers=AUTH)
            response = client.request(**{k: v for k, v in kwargs.items() if k in _PASSED})
            assert response.status_code < 500, f"{response.status_code} from {case.as_curl_command()}"

        check()


@FUZZ
@given(path=st.sampled_from(["/recommend", "/feedback", "/settings", "/admin/reload"]),
       content_type=st.sampled_from([None, "application/json", "application/json; charset=utf-8", "text/plain",
                                     "multipart/form-data", "multipart/form-data; boundary=x",
                                     "application/x-www-form-urlencoded", "application/vnd.bentoml+pickle",
                                     "application/octet-stream"]),
       body=st.one_of(st.binary(max_size=300),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                                   lambda inner: st.lists(inner, max_size=4)
                                   | st.dictionaries(st.sampled_from(["user_id", "k", "kinds", "events", "mute",
                                                                      "unmute", "commercial_opt_out", "x"]),
                                                     inner, max_size=4),
                                   max_leaves=12).map(lambda v: __import__("json").dumps(v).encode())))
def test_no_body_in_any_content_type_is_a_server_error(target, path, content_type, body):
    client, _ = target
    headers = dict(AUTH)
    if content_type is not None:
        headers["content-type"] = content_type
    r = client.post(path, content=body, headers=headers)
    assert r.status_code < 500, (path, content_type, body[:80], r.status_code, r.text[:200])
