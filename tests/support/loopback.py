"""Loopback HTTP servers and data-isolation fixtures for the data and download tests.

Loaded as a pytest plugin by tests/conftest.py; tests that touch the data layer opt in with
`pytestmark = pytest.mark.usefixtures("isolated_env")`. Only 127.0.0.1 is ever contacted."""
from __future__ import annotations

import http.server
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

from common.data import download
from common.data.download import DownloadState


class FixtureServer:
    """ThreadingHTTPServer on 127.0.0.1 serving a directory; records every GET path.

    mode: "ok" serves the files, "corrupt" serves them with one byte flipped, "404" serves nothing."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.mode = "ok"
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                path = server.root / self.path.lstrip("/")
                if server.mode == "404" or not path.is_file():
                    self.send_error(404)
                    return
                body = bytearray(path.read_bytes())
                if server.mode == "corrupt":
                    body[len(body) // 2] ^= 0xFF
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


class BlackholeServer:
    """Accepts TCP connections and never answers, so clients time out; counts connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def stop(self):
        # shutdown wakes the blocked accept() (close alone does not on Linux).
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)
        for conn in self.connections:
            conn.close()


def refused_url() -> str:
    """URL of a loopback port that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def record_urlopen(monkeypatch) -> list[str]:
    """Wrap urllib's urlopen to log every URL the code under test tries."""
    attempts: list[str] = []
    real = urllib.request.urlopen

    def spy(url, *args, **kwargs):
        attempts.append(url if isinstance(url, str) else url.full_url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", spy)
    return attempts


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """No real cache, no env mirrors, no proxies, and a fresh process-wide download state."""
    monkeypatch.setenv("DCGAN_BENCH_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.delenv("DCGAN_BENCH_MNIST_MIRRORS", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(download, "DEFAULT_STATE", DownloadState())


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def server(served):
    srv = FixtureServer(served)
    yield srv
    srv.stop()


@pytest.fixture
def second_server(served):
    srv = FixtureServer(served)
    yield srv
    srv.stop()


@pytest.fixture
def blackhole():
    srv = BlackholeServer()
    yield srv
    srv.stop()
