"""A local stand-in for Kaggle's API, reached by the real kaggle client through HTTP_PROXY.

With ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` the client calls ``http://localhost/api/v1/...``; with
``HTTP_PROXY`` pointing here, every request (absolute URI) arrives at this server. It plays the
three submit calls (StartSubmissionUpload, PUT to the returned createUrl, CreateSubmission), the
submissions list (ListSubmissions: each new submission stays PENDING for ``pending_polls`` lists,
then is COMPLETE with ``scores[file]``, or ERROR in the ``scoreerror`` scenario) and a data
download (DownloadDataFiles -> redirect -> zip), and can be told to fail in each way.

For code competitions it also plays the requests recorded from the client with
``tests/kaggle_recorder.py``: SaveKernel, GetKernelSessionStatus (RUNNING for ``running_polls``
looks, then COMPLETE, or ERROR with a log in the ``kernel_run="error"`` case, or RUNNING for ever),
ListKernelSessionOutput and the GET of each output file, GetDatasetStatus, ListCompetitions,
CreateCodeSubmission, and the Kaggle Models calls (GetModel, CreateModel, GetModelInstance,
StartBlobUpload + PUT, CreateModelInstance, CreateModelInstanceVersion).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class KaggleState:
    """What the fake server received, and how it should answer."""

    scenario: str = "ok"  # ok | 401 | 403 | 500 | noref | put500 | scoreerror | rules (code submissions)
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
    # code competitions
    kernel_run: str = "complete"  # complete | error | running (never ends)
    status_failures: int = 0  # the first N GetKernelSessionStatus calls answer 503
    running_polls: int = 2  # GetKernelSessionStatus answers RUNNING this many times first
    kernel_outputs: dict[str, bytes] = field(default_factory=dict)  # what the run leaves: name -> bytes
    kernel_log: str = ""
    kernels: dict[str, dict] = field(default_factory=dict)  # OWNER/SLUG -> {"versions", "polls", "body"}
    push_error: str = ""  # SaveKernel's ``error`` (e.g. a GPU quota), empty: accepted
    code_competitions: set[str] = field(default_factory=lambda: {"deepfashion-category-prediction"})
    dataset_status: dict[str, str] = field(default_factory=dict)  # OWNER/SLUG -> READY, BLOBS_RECEIVED...
    models: set[str] = field(default_factory=set)  # OWNER/MODEL
    model_versions: dict[str, list[list[str]]] = field(default_factory=dict)  # instance -> files per version


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


ERROR_LOG = [  # what Kaggle's log of a failed run holds: JSON events, stdout and stderr interleaved
    {"stream_name": "stdout", "time": 2.1, "data": "bundle: /kaggle/input/demo-bundle\n"},
    {"stream_name": "stderr", "time": 9.5, "data": "Traceback (most recent call last):\n"},
    {"stream_name": "stderr", "time": 9.5, "data": '  File "<cell>", line 5, in <module>\n'},
    {"stream_name": "stderr", "time": 9.6, "data": "FileNotFoundError: no test.csv under /kaggle/input\n"},
]


def _kernel_ref(body: dict) -> str:
    return f"{body.get('userName')}/{body.get('kernelSlug')}"


def _save_kernel(state: KaggleState, body: dict) -> tuple[int, dict]:
    if state.push_error:
        return 200, {"error": state.push_error}
    ref = body["slug"]
    kernel = state.kernels.setdefault(ref, {"versions": 0})
    kernel.update(versions=kernel["versions"] + 1, polls=0, body=body)
    unknown = [d for d in body.get("datasetDataSources", []) if d not in state.dataset_status]
    url = f"https://www.kaggle.com/code/{ref}"
    return 200, {
        "ref": f"/code/{ref}",
        "url": url,
        "versionNumber": kernel["versions"],
        "invalidDatasetSources": unknown,
    }


def _kernel_status(state: KaggleState, body: dict) -> tuple[int, dict]:
    kernel = state.kernels.get(_kernel_ref(body))
    if kernel is None:
        return 404, {"code": 404, "message": "Notebook not found"}
    if state.status_failures > 0:
        state.status_failures -= 1
        return 503, {"code": 503, "message": "unavailable"}
    kernel["polls"] += 1
    if kernel["polls"] <= state.running_polls or state.kernel_run == "running":
        return 200, {"status": "RUNNING"}
    if state.kernel_run == "error":
        return 200, {"status": "ERROR", "failureMessage": "Your notebook hit an error"}
    return 200, {"status": "COMPLETE"}


def _kernel_output(state: KaggleState, body: dict) -> tuple[int, dict]:
    if _kernel_ref(body) not in state.kernels:
        return 404, {"code": 404, "message": "Notebook not found"}
    files = [{"fileName": n, "url": f"http://localhost/kernel-output/{n}"} for n in state.kernel_outputs]
    log = json.dumps(ERROR_LOG) if state.kernel_run == "error" else state.kernel_log
    return 200, {"files": files, "log": log}


def _dataset_status(state: KaggleState, body: dict) -> tuple[int, dict]:
    status = state.dataset_status.get(f"{body.get('ownerSlug')}/{body.get('datasetSlug')}")
    if status is None:
        return 404, {"code": 404, "message": "Dataset not found"}
    return 200, {"status": status}


def _list_competitions(state: KaggleState, body: dict) -> tuple[int, dict]:
    slug = body.get("search", "")
    listed = {
        "ref": f"https://www.kaggle.com/competitions/{slug}",
        "isKernelsSubmissionsOnly": slug in state.code_competitions,
    }
    return 200, {"competitions": [listed]}


def _create_code_submission(state: KaggleState, body: dict) -> tuple[int, dict]:
    if body.get("competitionName") not in state.code_competitions:
        return 400, {"code": 400, "message": "This competition does not accept notebook submissions"}
    if state.scenario == "noref":
        return 200, {"message": "Submission limit reached for today"}
    if state.scenario == "rules":
        return 403, {"code": 403, "message": "You must accept this competition's rules"}
    kernel = state.kernels.get(f"{body.get('kernelOwner')}/{body.get('kernelSlug')}")
    if kernel is None or body.get("kernelVersion", kernel["versions"]) > kernel["versions"]:
        return 404, {"code": 404, "message": "Notebook version not found"}
    ref = 5000 + len(state.submissions)
    state.submissions.append(
        {
            "competition": body["competitionName"],
            "polls": 0,
            "ref": ref,
            "date": f"2026-11-24T09:{len(state.submissions):02d}:00.000Z",
            "description": body.get("submissionDescription", ""),
            "fileName": body.get("fileName", ""),
            "status": "PENDING",
        }
    )
    return 200, {"message": "Successfully submitted", "ref": ref}


def _model_ref(body: dict) -> str:
    return f"{body.get('ownerSlug')}/{body.get('modelSlug') or body.get('slug')}"


def _instance_ref(body: dict) -> str:
    framework = {"MODEL_FRAMEWORK_PY_TORCH": "pyTorch"}.get(body.get("framework"), body.get("framework"))
    return f"{_model_ref(body)}/{framework}/{body.get('instanceSlug')}"


def _get_model(state: KaggleState, body: dict) -> tuple[int, dict]:
    if _model_ref(body) not in state.models:
        return 404, {"code": 404, "message": "Model not found"}
    return 200, {"id": 1, "ref": _model_ref(body)}


def _create_model(state: KaggleState, body: dict) -> tuple[int, dict]:
    state.models.add(_model_ref(body))
    return 200, {"id": 1, "ref": _model_ref(body), "url": f"https://www.kaggle.com/models/{_model_ref(body)}"}


def _get_model_instance(state: KaggleState, body: dict) -> tuple[int, dict]:
    versions = state.model_versions.get(_instance_ref(body))
    if versions is None:
        return 404, {"code": 404, "message": "Model instance not found"}
    return 200, {"id": 2, "slug": body.get("instanceSlug"), "versionNumber": len(versions)}


def _create_instance(state: KaggleState, body: dict) -> tuple[int, dict]:
    inner = body.get("body") or {}
    ref = _instance_ref({**body, **inner})
    if _model_ref(body) not in state.models:
        return 404, {"code": 404, "message": "Model not found"}
    names = sorted(state.file_names[f["token"]] for f in inner.get("files", []))
    state.model_versions.setdefault(ref, []).append(names)
    return 200, {"id": 2, "ref": ref, "url": f"https://www.kaggle.com/models/{ref}"}


def _start_blob(state: KaggleState, body: dict) -> tuple[int, dict]:
    token = f"blob-{len(state.file_names)}"
    state.file_names[token] = body.get("name", "")
    return 200, {"token": token, "createUrl": f"http://localhost/upload/{token}"}


CODE_CALLS = {
    "SaveKernel": _save_kernel,
    "GetKernelSessionStatus": _kernel_status,
    "ListKernelSessionOutput": _kernel_output,
    "GetDatasetStatus": _dataset_status,
    "ListCompetitions": _list_competitions,
    "CreateCodeSubmission": _create_code_submission,
    "GetModel": _get_model,
    "CreateModel": _create_model,
    "GetModelInstance": _get_model_instance,
    "CreateModelInstance": _create_instance,
    "CreateModelInstanceVersion": _create_instance,
    "StartBlobUpload": _start_blob,
}


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
            name = path.rsplit("/", 1)[-1]
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
            if name in CODE_CALLS:
                return self._json(*CODE_CALLS[name](state, body))
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
            if path.startswith("/kernel-output/"):
                return self._reply(200, state.kernel_outputs[path.rsplit("/", 1)[-1]], "text/csv")
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
