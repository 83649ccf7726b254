"""The local servers of ``bench_vs_grove``, one per process: ``python -m bench.vs_grove_servers KIND ...``.

Prints its URL on the first line, then serves until terminated.

- ``crusoe N PAGE DIR``: the Crusoe simulator over HTTPS (DIR holds ``cert.pem``/``key.pem``;
  it writes ``crusoe-env.json`` there with the source's ids and secret for the benchmark).
- ``github N PAGE DIR``: GitHub's audit-log paging over HTTPS, serving the same N records
  (the Crusoe simulator's, plus the ``@timestamp``/``created_at`` milliseconds GitHub
  entries carry), PAGE per page, oldest first, next page in a ``Link`` header.
- ``hec`` / ``es``: the Splunk HEC and Elasticsearch test servers, counting only.
- ``http-sink``: answers 200 to every POST (Grove's ``remote_http`` output target).
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from forwarder.simulators.base import Request, Response, Simulator
from forwarder.simulators.crusoe import CrusoeSimulator
from tests.servers.tls import server_context

SPAN = 24 * 3600.0


class GithubAuditMock(Simulator):
    """``GET /orgs/<org>/audit-log``: the records in order, ``page`` at a time, ``?after=<index>`` cursors."""

    VENDOR = "github-mock"

    def __init__(self, records: int, page: int, **kwargs) -> None:
        self.records_sim = CrusoeSimulator(records=records, span=SPAN)
        self.total = records
        self.page = page
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.route("GET", r"/orgs/(?P<org>[^/]+)/audit-log", self.audit_log)

    def audit_log(self, request: Request, org: str) -> Response:
        start = int(request.arg("after") or 0)
        stop = min(self.total, start + self.page)
        entries = []
        for i in range(start, stop):
            rec = self.records_sim.record(i)
            ms = self.records_sim.time_ms(i)
            entries.append({"@timestamp": ms, "created_at": ms, **rec})
        headers = {}
        if stop < self.total:
            headers["Link"] = f'<{self.url}/orgs/{org}/audit-log?after={stop}&per_page=100>; rel="next"'
        return Response.json(entries, 200, headers)


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


def main(argv: list[str]) -> None:
    kind = argv[0]
    if kind in ("crusoe", "github"):
        records, page, directory = int(argv[1]), int(argv[2]), Path(argv[3])
        tls = server_context(directory / "cert.pem", directory / "key.pem")
        if kind == "crusoe":
            sim: Simulator = CrusoeSimulator(records=records, span=SPAN, tls=tls).start()
            table, env = sim.demo_source(records)
            env |= {"BENCH_CRUSOE_ORG": table["organization_id"], "BENCH_CRUSOE_KEY_ID": table["access_key_id"],
                    "BENCH_CRUSOE_SECRET": env[table["secret_key"].removeprefix("env:")]}
            (directory / "crusoe-env.json").write_text(json.dumps(env))
        else:
            sim = GithubAuditMock(records, page, tls=tls).start()
        print(sim.url, flush=True)
        sim.serve_forever()
    elif kind == "hec":
        from tests.servers.hec import HecServer, HecToken

        server = HecServer([HecToken("00000000-0000-0000-0000-000000000001")], record=False)
        server.start()
        print(server.url, flush=True)
        server.serve_forever()
    elif kind == "es":
        from tests.servers.elasticsearch import ElasticsearchServer

        es = ElasticsearchServer(record=False).start()
        print(es.url, flush=True)
        es.serve_forever()
    elif kind == "http-sink":
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
        httpd.serve_forever()
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
