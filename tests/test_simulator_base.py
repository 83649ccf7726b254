import requests

from forwarder.simulators.base import Faults, Response, Simulator, TokenBook, rng


class Echo(Simulator):
    VENDOR = "echo"

    def setup(self):
        self.route("GET", "/items/(?P<item>[^/]+)", lambda req, item: Response.json({"item": item, "q": req.arg("q")}))
        self.route("POST", "/items", lambda req: Response.json({"got": req.json()}, 201))


def test_routes_params_and_status_codes():
    with Echo() as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        assert requests.get(sim.url + "/items/a%20b?q=1").json() == {"item": "a b", "q": "1"}
        assert requests.post(sim.url + "/items", json={"x": 1}).status_code == 201
        assert requests.get(sim.url + "/nowhere").status_code == 404
        assert requests.delete(sim.url + "/items/x").status_code == 405


def test_faults_are_deterministic_and_shaped():
    def statuses(faults):
        with Echo(faults=faults) as sim:
            return [requests.get(sim.url + "/items/x").status_code for _ in range(40)]

    first = statuses(Faults(error_rate=0.3, throttle_rate=0.2, seed=7))
    assert first == statuses(Faults(error_rate=0.3, throttle_rate=0.2, seed=7))
    assert {200, 429, 503} == set(first)
    with Echo(faults=Faults(throttle_rate=1.0, retry_after=2)) as sim:
        r = requests.get(sim.url + "/items/x")
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"


def test_truncated_bodies_break_the_client_read():
    with Echo(faults=Faults(truncate_rate=1.0)) as sim:
        try:
            requests.get(sim.url + "/items/x").json()
        except (requests.exceptions.RequestException, ValueError):
            pass
        else:
            raise AssertionError("a truncated body must not read as complete")


def test_token_book_expiry():
    book = TokenBook(ttl=3600)
    token = book.issue("client-1")
    assert book.subject(f"Bearer {token}") == "client-1"
    assert book.subject("Bearer nope") is None and book.subject(None) is None
    book.expire_all()
    assert book.subject(f"Bearer {token}") is None


def test_rng_is_stable_per_key():
    assert rng(1, "a", 2).random() == rng(1, "a", 2).random()
    assert rng(1, "a", 2).random() != rng(1, "a", 3).random()
