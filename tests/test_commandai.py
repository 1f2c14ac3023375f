"""`cmdai_cli.commandai`'s asynchronous client and the HTTP/1.1 client under it, against
real loopback servers: answers, framing, keep-alive, refusals, time-outs, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cmdai_cli.commandai import AsyncClient, _behind_proxy, signature
from cmdai_cli.replay.delivery_record import Answer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, dict[str, str], bytes, int]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        port = self.client_address[1]
        self.seen.append((self.path, dict(self.headers.items()), body, port))
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"success":', b"true}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/busy":
            payload = b'{"message": "slow down"}'
            self.send_response(429)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(httpd: ThreadingHTTPServer, path: str, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{httpd.server_address[1]}{path}"


def post_all(client: AsyncClient, calls: list[tuple[str, bytes]]) -> list[Answer]:
    async def go() -> list[Answer]:
        try:
            return [await client.post_webhook(u, b, secret="s3cret") for u, b in calls]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_posts_are_signed_and_connections_kept_alive(server) -> None:
    answers = post_all(
        AsyncClient(5.0), [(url(server, "/hook?t=1"), b'{"n":%d}' % n) for n in range(3)]
    )
    assert answers == [Answer(True, 200)] * 3
    paths = {path for path, *_ in Handler.seen}
    assert paths == {"/hook?t=1"}
    _, headers, body, _ = Handler.seen[0]
    assert headers["X-Signature"] == signature("s3cret", body)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("cmdai-replay/")
    assert len({port for *_, port in Handler.seen}) == 1  # one connection, reused


def test_chunked_answers_and_connection_close_are_understood(server) -> None:
    answers = post_all(
        AsyncClient(5.0),
        [
            (url(server, "/chunked"), b"{}"),
            (url(server, "/close"), b"{}"),
            (url(server, "/"), b"{}"),
        ],
    )
    assert answers == [Answer(True, 200)] * 3
    ports = [port for *_, port in Handler.seen]
    assert ports[0] == ports[1] != ports[2]  # the server closed the second one


def test_a_refusal_carries_its_status_message_and_retry_after(server) -> None:
    [answer] = post_all(AsyncClient(5.0), [(url(server, "/busy"), b"{}")])
    assert not answer.ok and answer.status == 429 and answer.retry_after == 7.0
    assert answer.detail is not None and "slow down" in answer.detail


def test_no_server_and_no_answer_are_failures_without_a_status() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    [refused] = post_all(AsyncClient(5.0), [(f"http://127.0.0.1:{port}/", b"{}")])
    assert refused.status is None and not refused.timed_out
    assert refused.detail is not None and "webhook" in refused.detail
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        [hung] = post_all(AsyncClient(0.2), [(f"http://127.0.0.1:{port}/", b"{}")])
    assert hung.status is None and hung.timed_out


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_is_verified_with_the_trust_httpx_uses(server, tmp_path, monkeypatch) -> None:
    cert, key = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    target = url(server, "/hook", scheme="https")
    [untrusted] = post_all(AsyncClient(5.0), [(target, b"{}")])
    assert not untrusted.ok and untrusted.status is None
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    [trusted] = post_all(AsyncClient(5.0), [(target, b"{}")])
    assert trusted == Answer(True, 200)


def test_a_proxy_in_the_environment_is_noticed(monkeypatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert not _behind_proxy("https://api.example.com/hook")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _behind_proxy("https://api.example.com/hook")
    assert not _behind_proxy("http://api.example.com/hook")
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert not _behind_proxy("https://api.example.com/hook")
