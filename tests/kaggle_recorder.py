"""Record the HTTP requests the real kaggle client makes for the code-competition calls.

Run ``python -m tests.kaggle_recorder`` (with the worktree's src on PYTHONPATH): a logging server
answers every call with a minimal valid reply, the client is driven through kernels_push,
kernels_status, kernels_logs, kernels_output, competition_submit_code, competitions_list,
dataset_status and the three Kaggle Models calls, and the transcript (method, path, JSON body)
is printed. ``tests/kaggle_kernels_server.py`` plays exactly these requests; rerun this after a
client upgrade and compare.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

REPLIES = {  # call name -> the smallest reply the client accepts
    "SaveKernel": {
        "ref": "/code/tester/demo-inference",
        "url": "https://k/tester/demo-inference",
        "versionNumber": 3,
    },
    "GetKernelSessionStatus": {"status": "COMPLETE"},
    "ListKernelSessionOutput": {
        "files": [{"fileName": "submission.csv", "url": "http://localhost/out/submission.csv"}],
        "log": '[{"stream_name":"stdout","time":1.0,"data":"done\\n"}]',
    },
    "CreateCodeSubmission": {"message": "Successfully submitted", "ref": 77},
    "ListCompetitions": {
        "competitions": [
            {"ref": "https://www.kaggle.com/competitions/demo-comp", "isKernelsSubmissionsOnly": True}
        ]
    },
    "GetDatasetStatus": {"status": "READY"},
    "GetModel": {"id": 1, "ref": "tester/demo-model"},
    "CreateModel": {"id": 1, "ref": "tester/demo-model", "url": "https://k/models/tester/demo-model"},
    "GetModelInstance": {
        "id": 2,
        "slug": "main",
        "framework": "MODEL_FRAMEWORK_PY_TORCH",
        "versionNumber": 1,
    },
    "StartBlobUpload": {"token": "blob-0", "createUrl": "http://localhost/upload/blob-0"},
    "CreateModelInstance": {"id": 2, "ref": "tester/demo-model/pyTorch/main", "url": "https://k/m"},
    "CreateModelInstanceVersion": {"id": 3, "ref": "tester/demo-model/pyTorch/main/2", "url": "https://k/m"},
}


def _server(log: list[dict]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, body: bytes, content_type: str = "application/json"):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            path = urlsplit(self.path).path
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            log.append({"method": "POST", "path": path, "body": json.loads(raw or b"{}")})
            self._send(json.dumps(REPLIES.get(path.rsplit("/", 1)[-1], {})).encode())

        def do_PUT(self):
            size = len(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            log.append({"method": "PUT", "path": urlsplit(self.path).path, "bytes": size})
            self._send(b"{}")

        def do_GET(self):
            log.append({"method": "GET", "path": urlsplit(self.path).path})
            self._send(b"id,label\n1,0\n", "text/csv")

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _drive(api, folder: Path) -> None:
    """Every call the code-competition path makes, in the order a user meets them."""
    (folder / "kernel").mkdir()
    (folder / "kernel/notebook.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    (folder / "kernel/kernel-metadata.json").write_text(
        json.dumps(
            {
                "id": "tester/demo-inference",
                "title": "demo inference",
                "code_file": "notebook.ipynb",
                "language": "python",
                "kernel_type": "notebook",
                "is_private": True,
                "enable_gpu": False,
                "enable_internet": False,
                "dataset_sources": ["tester/demo-bundle"],
                "competition_sources": ["demo-comp"],
                "model_sources": ["tester/demo-model/pyTorch/main/1"],
            }
        )
    )
    api.dataset_status("tester/demo-bundle")
    api.kernels_push(str(folder / "kernel"))
    api.kernels_status("tester/demo-inference")
    api.kernels_logs("tester/demo-inference")
    api.kernels_output("tester/demo-inference", str(folder / "out"), force=True, quiet=True)
    api.competitions_list(search="demo-comp")
    api.competition_submit_code("submission.csv", "m", "demo-comp", "tester/demo-inference", 3, quiet=True)
    (folder / "model").mkdir()
    (folder / "model/model-metadata.json").write_text(
        json.dumps(
            {
                "ownerSlug": "tester",
                "slug": "demo-model",
                "title": "demo model",
                "isPrivate": True,
                "description": "d",
            }
        )
    )
    (folder / "model/model-instance-metadata.json").write_text(
        json.dumps(
            {
                "ownerSlug": "tester",
                "modelSlug": "demo-model",
                "instanceSlug": "main",
                "framework": "pyTorch",
                "licenseName": "Apache 2.0",
            }
        )
    )
    (folder / "model/bundle.json").write_text("{}")
    api.model_get("tester/demo-model")
    api.model_create_new(str(folder / "model"))
    api.model_instance_get("tester/demo-model/pyTorch/main")
    api.model_instance_create(str(folder / "model"), quiet=True)
    api.model_instance_version_create(
        "tester/demo-model/pyTorch/main", str(folder / "model"), "v2", quiet=True
    )


def record() -> list[dict]:
    """Drive the client against the logging server; return the requests in order."""
    log: list[dict] = []
    server = _server(log)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            KAGGLE_API_ENVIRONMENT="LOCALHOST",
            HTTP_PROXY=f"http://127.0.0.1:{server.server_address[1]}",
            KAGGLE_CONFIG_DIR=tmp,
            KAGGLE_USERNAME="tester",
            KAGGLE_KEY="secret",
        )
        for name in ("NO_PROXY", "no_proxy", "KAGGLE_API_TOKEN"):
            os.environ.pop(name, None)
        with contextlib.redirect_stdout(io.StringIO()):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
            _drive(api, Path(tmp))
    server.shutdown()
    return log


if __name__ == "__main__":
    json.dump(record(), sys.stdout, indent=1)
    print()
