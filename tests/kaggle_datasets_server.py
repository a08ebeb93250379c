"""A local stand-in for Kaggle's dataset API, reached by the real kaggle client through HTTP_PROXY.

A sibling of ``kaggle_server.py`` (submissions). It plays the calls of ``dataset_create_new`` and
``dataset_create_version``: GetDatasetStatus (404 for an unknown dataset), StartBlobUpload, the
PUT of each file to the returned createUrl, then CreateDataset or CreateDatasetVersion; and it
can be told to fail in each way.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class DatasetsState:
    """What the fake server received, and how it should answer."""

    scenario: str = "ok"  # ok | 401 | 403 | refused
    datasets: dict[str, list[dict]] = field(default_factory=dict)  # ref -> versions (file names)
    calls: list[str] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    blobs: dict[str, dict] = field(default_factory=dict)  # token -> {"name", "data"}
    auth_headers: list[str] = field(default_factory=list)


def make_server(state: DatasetsState) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def _json(self, status: int, obj: dict):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self):
            name = urlsplit(self.path).path.rsplit("/", 1)[-1]
            state.calls.append(name)
            state.auth_headers.append(self.headers.get("Authorization", ""))
            body = json.loads(self._body() or b"{}")
            state.requests.append({"call": name, **body})
            if state.scenario in ("401", "403"):
                status = int(state.scenario)
                return self._json(status, {"code": status, "message": f"error {status}"})
            if name == "GetDatasetStatus":
                ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
                if ref in state.datasets:
                    return self._json(200, {"status": "READY"})
                return self._json(404, {"code": 404, "message": "dataset not found"})
            if name == "StartBlobUpload":
                token = f"blob-{len(state.blobs)}"
                state.blobs[token] = {"name": body.get("name"), "data": None}
                return self._json(200, {"token": token, "createUrl": f"http://localhost/upload/{token}"})
            if name in ("CreateDataset", "CreateDatasetVersion"):
                if state.scenario == "refused":
                    return self._json(200, {"error": "The dataset slug is reserved"})
                owner = body.get("ownerSlug")
                slug = body.get("slug") or body.get("datasetSlug")
                ref = f"{owner}/{slug}"
                files = body.get("files") or (body.get("body") or {}).get("files") or []
                names = sorted(state.blobs[f["token"]]["name"] for f in files)
                state.datasets.setdefault(ref, []).append({"call": name, "files": names})
                return self._json(
                    200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}
                )
            return self._json(404, {"code": 404, "message": f"no such call {name}"})

        def do_PUT(self):
            token = urlsplit(self.path).path.rsplit("/", 1)[-1]
            state.calls.append("PUT")
            state.blobs[token]["data"] = self._body()
            return self._json(200, {})

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def start(state: DatasetsState) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = make_server(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
