"""The shared HTTP layer against a local server (no timing assertions: sleeps are recorded)."""

import pytest
import requests
import tenacity

from forwarder.errors import AuthError, HttpError, SourceError
from forwarder.http import HttpClient, HttpSettings, RateLimiter, response_json, retry_after_seconds, shared_limiter
from forwarder.secrets import Secret
from forwarder.simulators.base import Faults, Response, Simulator
from tests.fakeclock import FakeClock


class Scripted(Simulator):
    """Answers each request with the next scripted (status, body, headers)."""

    VENDOR = "scripted"

    def setup(self):
        self.script = []
        self.seen = []
        self.route("GET", "/x", self.next)
        self.route("POST", "/x", self.next)

    def next(self, request):
        self.seen.append(request)
        status, body, headers = self.script.pop(0) if self.script else (200, b'{"ok":true}', {})
        return Response(status, body, headers)


@pytest.fixture
def sim():
    with Scripted() as s:
        yield s


def client(**kw):
    sleeps = []
    c = HttpClient("vendor", HttpSettings(retries=3, backoff_base=0.01, backoff_max=0.02), sleep=sleeps.append, **kw)
    return c, sleeps


def test_retries_5xx_then_succeeds_honouring_retry_after(sim):
    sim.script = [(503, b"busy", {}), (429, b"slow down", {"Retry-After": "7"}), (200, b'{"a":1}', {})]
    c, sleeps = client()
    assert c.get_json(sim.url + "/x") == {"a": 1}
    assert len(sim.seen) == 3
    assert sleeps[1] == 7  # Retry-After wins over the (tiny) backoff


def test_gives_up_after_retries_with_one_line(sim):
    sim.script = [(500, b"oops", {})] * 10
    c, _ = client()
    with pytest.raises(HttpError) as info:
        c.request("GET", sim.url + "/x?token=abc")
    msg = str(info.value)
    assert len(sim.seen) == 4
    assert msg.startswith("vendor: GET http://127.0.0.1:") and "returned HTTP 500: oops" in msg
    assert "token=abc" not in msg and "\n" not in msg


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retried(sim, status):
    sim.script = [(status, b'{"error":"nope"}', {})]
    c, _ = client()
    with pytest.raises(HttpError) as info:
        c.request("GET", sim.url + "/x")
    assert len(sim.seen) == 1 and info.value.status == status
    assert isinstance(info.value, AuthError) == (status == 403)


def test_401_refreshes_once_when_auth_can(sim):
    class Refreshing(requests.auth.AuthBase):
        refreshed = 0

        def __call__(self, r):
            r.headers["Authorization"] = f"Bearer t{self.refreshed}"
            return r

        def refresh(self):
            self.refreshed += 1

    auth = Refreshing()
    sim.script = [(401, b"expired", {}), (200, b"{}", {})]
    c, _ = client(auth=auth)
    c.request("GET", sim.url + "/x")
    assert auth.refreshed == 1 and [r.header("authorization") for r in sim.seen] == ["Bearer t0", "Bearer t1"]
    sim.script = [(401, b"expired", {}), (401, b"still bad", {})]
    with pytest.raises(AuthError):
        c.request("GET", sim.url + "/x")
    assert auth.refreshed == 2  # refreshed once more, then gave up


def test_secret_in_error_body_is_redacted(sim):
    secret = Secret("leaky-secret-value-99")
    sim.script = [(400, f"bad key {secret.reveal()}".encode(), {})]
    c, _ = client()
    with pytest.raises(HttpError) as info:
        c.request("GET", sim.url + "/x")
    assert "leaky-secret-value-99" not in str(info.value) and "***" in str(info.value)


def test_truncated_body_is_retried():
    with Scripted(faults=Faults(truncate_rate=1.0)) as sim:
        c, _ = client()
        with pytest.raises(HttpError) as info:
            c.request("GET", sim.url + "/x")
        assert len(sim.seen) == 4 and "unreachable after 4 attempts" in str(info.value)


def test_unreachable_host_is_one_line(closed_port):
    c, _ = client()
    with pytest.raises(HttpError) as info:
        c.request("GET", f"http://127.0.0.1:{closed_port}/x")
    assert "unreachable after 4 attempts" in str(info.value) and "\n" not in str(info.value)


def test_non_json_body_is_a_source_error(sim):
    sim.script = [(200, b"<html>login page</html>", {})]
    c, _ = client()
    with pytest.raises(SourceError) as info:
        response_json(c.request("GET", sim.url + "/x"), "vendor")
    assert "not valid JSON" in str(info.value)


def test_429_blocks_the_shared_limiter(sim):
    clock = FakeClock()
    limiter = RateLimiter(per_minute=None, clock=clock, sleep=clock.sleep)
    sim.script = [(429, b"", {"Retry-After": "30"}), (200, b"{}", {})]
    c, backoffs = client(limiter=limiter)
    c.request("GET", sim.url + "/x")
    # the 30 s wait happens in the limiter (shared by every client of that credential), not in the backoff
    assert clock.sleeps == [30] and backoffs == [0.0]


def test_429_without_retry_after_still_blocks_everyone(sim):
    clock = FakeClock()
    limiter = RateLimiter(per_minute=None, clock=clock, sleep=clock.sleep)
    sim.script = [(429, b"", {}), (200, b"{}", {})]
    c, backoffs = client(limiter=limiter)
    c.request("GET", sim.url + "/x")
    assert backoffs == [0.0] and len(clock.sleeps) == 1 and 0.005 <= clock.sleeps[0] <= 0.01


@pytest.mark.parametrize("first, second", [
    ((429, {"RateLimit-Reset": "42"}), (200, {})),  # a 429 waits for the window to reset
    ((200, {"ratelimit-remaining": "0", "ratelimit-reset": "42"}), (200, {})),  # exhausted: wait before the next
    ((200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "42"}), (200, {})),  # the other header family
])
def test_rate_limit_headers_block_the_limiter_until_reset(sim, first, second):
    clock = FakeClock()
    limiter = RateLimiter(per_minute=None, clock=clock, sleep=clock.sleep)
    sim.script = [(first[0], b"{}", first[1]), (second[0], b"{}", second[1]), (200, b"{}", {})]
    c, _ = client(limiter=limiter)
    c.request("GET", sim.url + "/x")
    c.request("GET", sim.url + "/x")
    assert clock.sleeps == [42]


def test_token_bucket_paces_requests():
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire()
    # 2 from the burst, then one per second
    assert clock.now - 1000.0 == pytest.approx(3.0)


def test_a_block_is_extended_never_shortened():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.block_for(10)
    limiter.block_for(3)
    limiter.acquire()
    assert clock.now - 1000.0 == pytest.approx(10.0)


@pytest.mark.parametrize("value, seconds", [("5", 5), ("0", 0), ("junk", None), (None, None)])
def test_retry_after_parsing(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_http_date_in_the_past_is_zero():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_a_destructive_read_is_not_retried_after_a_lost_answer():
    with Scripted(faults=Faults(latency=0.5)) as slow:
        c = HttpClient("vendor", HttpSettings(retries=3, backoff_base=0.01, timeout=0.1), sleep=lambda s: None)
        with pytest.raises(HttpError) as info:
            c.request("GET", slow.url + "/x", idempotent=False)
        assert "not retried: the read is destructive" in str(info.value)
        assert slow.requests == 1


def test_a_destructive_read_is_retried_when_nothing_was_sent(sim, closed_port):
    c, sleeps = client()
    with pytest.raises(HttpError) as info:
        c.request("GET", f"http://127.0.0.1:{closed_port}/x", idempotent=False)
    assert "unreachable after 4 attempts" in str(info.value) and len(sleeps) == 3
    sim.script = [(503, b"", {}), (200, b"{}", {})]
    assert c.request("GET", sim.url + "/x", idempotent=False).status_code == 200


@pytest.mark.parametrize("start", [1.0e5, 1.0e9])
@pytest.mark.parametrize("per_minute", [7, 90, 100, 6000])
def test_token_bucket_never_spins_on_float_rounding(start, per_minute):
    # At a large clock value a refill can land at 1 - ε tokens; the next wait is then below the
    # clock's resolution, the clock never moves and acquire() used to loop forever.
    clock = FakeClock(now=start)
    limiter = RateLimiter(per_minute=per_minute, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(200):
        limiter.acquire()
        assert len(clock.sleeps) <= 400, "acquire() keeps sleeping without taking a token"
    assert all(s >= 0.001 for s in clock.sleeps)
    assert clock.now - start == pytest.approx(199 * 60.0 / per_minute, abs=0.5)


def test_shared_limiters_do_not_leak_between_tests_part_one():
    shared_limiter("leak-check", per_minute=60).block_for(1e6)


def test_shared_limiters_do_not_leak_between_tests_part_two():
    assert shared_limiter("leak-check", per_minute=60).blocked_until == 0.0


def test_a_name_that_does_not_resolve_fails_at_once(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    sleeps = []
    c = HttpClient("vendor", HttpSettings(retries=5, timeout=5), sleep=sleeps.append)
    with pytest.raises(HttpError) as info:
        c.request("GET", "https://no-such-host.invalid/x")
    c.close()
    assert "cannot resolve host 'no-such-host.invalid'" in str(info.value)
    assert sleeps == [] and "\n" not in str(info.value)


class _Endless:
    """A local server whose 200 never ends (chunked), or whose small gzip body inflates hugely."""

    def __init__(self, kind: str) -> None:
        import gzip
        import http.server
        import threading

        bomb = gzip.compress(b"0" * (8 << 20), 9) if kind == "gzip" else b""
        served = self.served = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                served.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if kind == "gzip":
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(bomb)))
                    self.end_headers()
                    self.wfile.write(bomb)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"[" + b"1," * 32767 + b"1"
                try:
                    for _ in range(10_000):  # 640 MiB unless the client stops reading
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    return  # the client hung up: what it should do

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/x"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("kind", ["endless", "gzip"])
def test_a_body_past_max_response_mb_fails_the_request_in_one_line(kind):
    """requests buffers a whole body: an endless one, or 8 MiB inflated from a few KiB of gzip,
    would grow the process until the kernel kills it. Past the limit the request fails instead."""
    server = _Endless(kind)
    try:
        c = HttpClient("vendor", HttpSettings(retries=3, max_response_mb=1), sleep=lambda _s: None)
        with pytest.raises(HttpError) as info:
            c.request("GET", server.url + "?token=abc")
    finally:
        server.close()
    msg = str(info.value)
    assert msg.startswith("vendor: GET http://127.0.0.1:") and "HTTP 200 with a body larger than 1 MiB (http.max_response_mb)" in msg
    assert "token=abc" not in msg and "\n" not in msg
    assert len(server.served) == 1  # a vendor that sends too much is not asked again


def test_a_body_within_the_limit_reads_as_usual_and_a_streamed_one_is_left_to_the_caller(sim):
    big = b'{"a":"' + b"x" * (3 << 20) + b'"}'
    sim.script = [(200, big, {}), (200, big, {})]
    c = HttpClient("vendor", HttpSettings(max_response_mb=4))
    assert c.get_json(sim.url + "/x") == {"a": "x" * (3 << 20)}
    small = HttpClient("vendor", HttpSettings(max_response_mb=1))
    resp = small.request("GET", sim.url + "/x", stream=True)  # a download the caller writes to disk
    assert sum(len(chunk) for chunk in resp.iter_content(1 << 16)) == len(big)


def test_a_request_leaves_no_cycle_holding_its_arguments(sim):
    """The per-request closure named itself (the 401 refresh called it again), a reference cycle:
    each request's kwargs, a sink's whole body among them, lived until the cyclic collector ran."""
    import gc
    import weakref

    class Headers(dict):
        pass  # a dict that can be weakly referenced, standing for anything the caller passes

    c = HttpClient("vendor", HttpSettings())
    headers = Headers({"X-Test": "1"})
    gone = weakref.ref(headers)
    was_enabled = gc.isenabled()
    gc.disable()  # only reference counting from here
    try:
        c.request("POST", sim.url + "/x", data=b"body", headers=headers)
        del headers
        assert gone() is None
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize("script", [[], [(503, b"busy", {}), (200, b'{"a":1}', {})], [(404, b"no", {})]])
def test_a_request_leaves_no_garbage_for_the_cyclic_collector(sim, script):
    """gcpolicy collects by the clock: whatever a request leaves in cycles lives until then."""
    import gc

    c = HttpClient("vendor", HttpSettings(retries=2, backoff_base=0.001, backoff_max=0.002), sleep=lambda _s: None)
    c.request("GET", sim.url + "/x")  # one request first: lazily built state is not garbage
    sim.script = list(script)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        c.request("GET", sim.url + "/x", ok=(200, 404))
        gc.collect()
        # the simulator answers from a thread of this process: only the client's objects count
        ours = [o for o in gc.garbage if isinstance(o, tenacity.BaseRetrying)
                or getattr(o, "__qualname__", "").startswith("HttpClient.")]
        assert ours == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
