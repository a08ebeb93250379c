"""A local stand-in for Kaggle's API, reached by the real kaggle client through HTTP_PROXY.

With ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` the client calls ``http://localhost/api/v1/...``; with
``HTTP_PROXY`` pointing here, every request (absolute URI) arrives at this server. It plays the
three submit calls (StartSubmissionUpload, PUT to the returned createUrl, CreateSubmission), the
submissions list (ListSubmissions: each new submission stays PENDING for ``pending_polls`` lists,
then is COMPLETE with ``scores[file]``, or ERROR in the ``scoreerror`` scenario) and a data
download (DownloadDataFiles -> redirect -> zip), and can be told to fail in each way.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

API = "/api/v1/competitions.CompetitionApiService/"


@dataclass
class KaggleState:
    """What the fake server received, and how it should answer."""

    scenario: str = "ok"  # ok | 401 | 403 | 500 | noref | put500 | scoreerror
    valid_token: str = "kgat-valid-token"
    zip_bytes: bytes = b""
    calls: list[str] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    auth_headers: list[str] = field(default_factory=list)
    pending_polls: int = 2
    list_failures: int = 0  # the first N ListSubmissions calls answer 503
    scores: dict[str, str] = field(default_factory=dict)  # file name -> public score
    file_names: dict[str, str] = field(default_factory=dict)  # upload token -> file name
    submissions: list[dict] = field(default_factory=list)  # newest last, as ListSubmissions shows them


def _listed(state: KaggleState, competition: str) -> list[dict]:
    """The competition's submissions, newest first; each list brings a pending one closer to scored."""
    out = []
    for sub in reversed(state.submissions):
        if sub["competition"] != competition:
            continue
        sub["polls"] += 1
        item = {k: v for k, v in sub.items() if k not in ("competition", "polls")}
        if sub["polls"] > state.pending_polls:
            if state.scenario == "scoreerror":
                item.update(status="ERROR", errorDescription="Evaluation failed: 3 rows have no label")
            else:
                score = state.scores.get(sub["fileName"], "0.5000")
                item.update(status="COMPLETE", publicScore=score, privateScore="")
        out.append(item)
    return out


def make_server(state: KaggleState) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def _reply(
            self, status: int, body: bytes = b"", content_type: str = "application/json", headers=None
        ):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: dict):
            self._reply(status, json.dumps(obj).encode())

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self):
            path = urlsplit(self.path).path
            name = path.removeprefix(API)
            state.calls.append(f"POST {name}")
            state.auth_headers.append(self.headers.get("Authorization", ""))
            body = json.loads(self._body() or b"{}")
            state.requests.append({"call": name, **body})
            if path.endswith("/security.OAuthService/IntrospectToken"):
                if body.get("token") == state.valid_token:
                    return self._json(200, {"active": True, "username": "tester"})
                return self._json(200, {"active": False})
            if state.scenario in ("401", "403", "500"):
                status = int(state.scenario)
                return self._json(status, {"code": status, "message": f"error {status}"})
            if name == "StartSubmissionUpload":
                token = f"blob-{len(state.uploads) + len(state.calls)}"
                state.file_names[token] = body.get("fileName", "")
                return self._json(200, {"token": token, "createUrl": f"http://localhost/upload/{token}"})
            if name == "CreateSubmission":
                if state.scenario == "noref":
                    return self._json(200, {"message": "Submission limit reached for today"})
                ref = 4242 + len(state.requests)
                state.submissions.append(
                    {
                        "competition": body.get("competitionName", ""),
                        "polls": 0,
                        "ref": ref,
                        "date": f"2026-11-23T10:{len(state.submissions):02d}:00.000Z",
                        "description": body.get("submissionDescription", ""),
                        "fileName": state.file_names.get(body.get("blobFileTokens", ""), ""),
                        "status": "PENDING",
                    }
                )
                return self._json(200, {"message": "Successfully submitted", "ref": ref})
            if name == "ListSubmissions" and state.list_failures > 0:
                state.list_failures -= 1
                return self._json(503, {"code": 503, "message": "unavailable"})
            if name == "ListSubmissions":
                return self._json(200, {"submissions": _listed(state, body.get("competitionName", ""))})
            if name == "DownloadDataFiles":
                return self._reply(302, headers={"Location": "http://localhost/files/data.zip"})
            return self._json(404, {"code": 404, "message": f"no such call {name}"})

        def do_PUT(self):
            path = urlsplit(self.path).path
            state.calls.append(f"PUT {path}")
            data = self._body()
            if state.scenario == "put500":
                return self._reply(500, b"upload failed", "text/plain")
            state.uploads[path.rsplit("/", 1)[-1]] = data
            return self._json(200, {})

        def do_GET(self):
            path = urlsplit(self.path).path
            state.calls.append(f"GET {path}")
            if path == "/files/data.zip":
                return self._reply(
                    200,
                    state.zip_bytes,
                    "application/zip",
                    {"Last-Modified": "Sun, 22 Nov 2026 10:00:00 GMT"},
                )
            return self._reply(404, b"", "text/plain")

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def start(state: KaggleState) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = make_server(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
