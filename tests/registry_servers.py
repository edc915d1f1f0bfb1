"""Real peers on loopback for the prober tests (helpers and fixtures, not a conftest).

* :class:`RegistryProcess` runs the CNCF Distribution registry (Debian package
  ``docker-registry``, 2.8) from a ``config.yml`` written into a temp dir, on
  ``127.0.0.1:<free port>``: open, htpasswd (bcrypt) Basic auth, token auth, TLS.
* :class:`ThreadedServer` runs a small aiohttp app in its own thread and loop (so it
  can outlive a test's event loop): the token server, HTML/404/500/slow/redirect peers.
* :class:`TokenIssuer` is a minimal Docker token server: checks Basic credentials (or a
  static bearer token), answers an RS256 JWT that Distribution 2.8 accepts.

What Distribution 2.8 verifies in a token (registry/auth/token/token.go): ``iss`` equals
``auth.token.issuer``; ``aud`` equals ``auth.token.service``; ``exp``/``nbf`` with 60 s
leeway; the signing key comes from the JOSE header - ``x5c`` (a chain that must verify
up to a cert of ``rootcertbundle``; checked first), else ``jwk``, else ``kid`` (a libtrust
fingerprint of a key of ``rootcertbundle``); the signature with ``alg`` (RS256 here).
For the ``/v2/`` base route no ``access`` entry is needed. The issuer here sends both
``x5c`` (its self-signed cert, which is the whole rootcertbundle) and the libtrust ``kid``.

If ``docker-registry`` is missing the registry fixtures skip, but fail under ``CI=true``.
Import fixtures into a test module with ``from tests.registry_servers import ...``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

REGISTRY_BINARY = "docker-registry"
MISSING_MESSAGE = "docker-registry not installed (apt-get install docker-registry)"
START_TIMEOUT_S = 10.0
TOKEN_SERVICE = "regdb-test-registry"
TOKEN_ISSUER = "regdb-test-token-issuer"
STATIC_BEARER = "static-bearer-credential-0123456789"


# --------------------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = START_TIMEOUT_S, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def registry_binary() -> str:
    """Path of docker-registry; skip the test when missing, fail when CI=true."""
    path = shutil.which(REGISTRY_BINARY)
    if path is None and os.access("/usr/bin/docker-registry", os.X_OK):
        path = "/usr/bin/docker-registry"
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING_MESSAGE)
        pytest.skip(MISSING_MESSAGE)
    return path


def htpasswd_line(username: str, password: str) -> str:
    """An htpasswd line with a bcrypt hash (the only kind Distribution accepts)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{username}:{hashed.replace('$2b$', '$2y$', 1)}\n"


# --------------------------------------------------------------------------- Distribution


@dataclass
class RegistryProcess:
    """One ``docker-registry serve`` process on loopback; call :meth:`stop` when done."""

    workdir: Path
    port: int
    scheme: str = "http"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "registry.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        auth: dict[str, Any] | None = None,
        tls: dict[str, str] | None = None,
        prefix: str | None = None,
        access_log: bool = False,
    ) -> RegistryProcess:
        """Start one; ``access_log`` writes a line per request to ``registry.log``."""
        binary = registry_binary()
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        http: dict[str, Any] = {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if tls is not None:
            http["tls"] = tls
        if prefix is not None:
            http["prefix"] = prefix
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": not access_log}},
            "storage": {
                "filesystem": {"rootdirectory": str(workdir / "data")},
                "delete": {"enabled": True},
            },
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if auth is not None:
            config["auth"] = auth
        config_path = workdir / "config.yml"
        config_path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        server = cls(workdir=workdir, port=port, scheme="https" if tls else "http")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with server.log_path.open("wb") as log:
            server.process = subprocess.Popen(
                [binary, "serve", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=workdir,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                break
            if wait_for_port(port, timeout_s=0.2):
                return server
        log_tail = server.log_path.read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"docker-registry did not start on port {port}: {log_tail}")

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --------------------------------------------------------------------------- aiohttp in a thread


@dataclass
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class ThreadedServer:
    """Serve an aiohttp app on 127.0.0.1 from a private thread + loop; records requests."""

    def __init__(
        self, app: web.Application, *, ssl_context: Any = None, host: str = "127.0.0.1"
    ) -> None:
        self.app = app
        self.host = host
        self.seen: list[SeenRequest] = []
        self.port = 0
        self._ssl = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        app.middlewares.append(self._record)

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.seen.append(
            SeenRequest(request.method, request.path, dict(request.query), dict(request.headers))
        )
        return await handler(request)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._ssl else 'http'}://{host}:{self.port}"

    def start(self) -> ThreadedServer:
        self._thread = threading.Thread(target=self._main, name="test-aiohttp", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("test server did not start")
        if self._error is not None:
            raise RuntimeError("test server failed to start") from self._error
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self._ssl)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


# --------------------------------------------------------------------------- token issuer


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """libtrust fingerprint: base32(sha256(DER SPKI)[:30]) in 4-char groups joined by ':'."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


class TokenIssuer:
    """Signing key + self-signed cert (the registry's rootcertbundle) and the token app."""

    def __init__(self, users: dict[str, str], *, static_bearer: str = STATIC_BEARER) -> None:
        self.users = users
        self.static_bearer = static_bearer
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regdb test token signer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.issued = 0
        self.expires_in = 300
        """What the token answers say (tests of the token cache shorten it)."""
        self.tokens: list[str] = []

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, subject: str, scope: str | None) -> str:
        now = int(time.time())
        access: list[dict[str, Any]] = []
        if scope:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        headers = {
            "kid": libtrust_key_id(self.key.public_key()),
            "x5c": [base64.b64encode(cert_der).decode()],
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers=headers)

    def _subject(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return "token-user" if value == self.static_bearer else None
        if scheme.lower() != "basic":
            return None
        try:
            username, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        expected = self.users.get(username)
        return (
            username
            if expected is not None and secrets.compare_digest(expected, password)
            else None
        )

    async def handle(self, request: web.Request) -> web.Response:
        if request.query.get("service") != TOKEN_SERVICE:
            return web.json_response({"error": "unknown service"}, status=400)
        subject = self._subject(request)
        if subject is None:
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED"}]},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="token"'},
            )
        self.issued += 1
        token = self.sign(subject, request.query.get("scope"))
        self.tokens.append(token)
        return web.json_response(
            {"token": token, "access_token": token, "expires_in": self.expires_in}
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self.handle)
        return app


# --------------------------------------------------------------------------- fixtures

BASIC_USER = "prober"
BASIC_PASSWORD = "correct-horse-battery-staple"
TOKEN_USER = "tokenuser"
TOKEN_PASSWORD = "token-user-s3cret-pass"


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    server = RegistryProcess.start(tmp_path_factory.mktemp("registry-open"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prefixed_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry served under ``/mirror/`` (Distribution's ``http.prefix``)."""
    server = RegistryProcess.start(tmp_path_factory.mktemp("registry-prefix"), prefix="/mirror/")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("registry-basic")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(htpasswd_line(BASIC_USER, BASIC_PASSWORD))
    auth = {"htpasswd": {"realm": "regdb-test", "path": str(htpasswd)}}
    server = RegistryProcess.start(workdir, auth=auth)
    yield server
    server.stop()


@dataclass
class TokenSetup:
    registry: RegistryProcess
    issuer: TokenIssuer
    token_server: ThreadedServer


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenSetup]:
    registry_binary()
    workdir = tmp_path_factory.mktemp("registry-token")
    issuer = TokenIssuer({TOKEN_USER: TOKEN_PASSWORD})
    token_server = ThreadedServer(issuer.app()).start()
    bundle = workdir / "token-root.pem"
    bundle.write_bytes(issuer.cert_pem())
    auth = {
        "token": {
            "realm": f"{token_server.url}/token",
            "service": TOKEN_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": str(bundle),
        }
    }
    try:
        registry = RegistryProcess.start(workdir, auth=auth)
    except BaseException:
        token_server.stop()
        raise
    yield TokenSetup(registry, issuer, token_server)
    registry.stop()
    token_server.stop()


@dataclass
class TLSSetup:
    registry: RegistryProcess
    ca_pem: str
    not_after: dt.datetime


def _start_tls_registry(workdir: Path, valid_for: dt.timedelta) -> TLSSetup:
    registry_binary()
    ca = trustme.CA()
    not_after = (dt.datetime.now(dt.UTC) + valid_for).replace(microsecond=0)
    leaf = ca.issue_cert("127.0.0.1", "localhost", not_after=not_after)
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_path.write_bytes(leaf.private_key_pem.bytes())
    registry = RegistryProcess.start(
        workdir, tls={"certificate": str(cert_path), "key": str(key_path)}
    )
    return TLSSetup(registry, ca.cert_pem.bytes().decode(), not_after)


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSSetup]:
    setup = _start_tls_registry(tmp_path_factory.mktemp("registry-tls"), dt.timedelta(days=365))
    yield setup
    setup.registry.stop()


@pytest.fixture(scope="module")
def expiring_tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSSetup]:
    setup = _start_tls_registry(
        tmp_path_factory.mktemp("registry-tls-expiring"), dt.timedelta(days=5)
    )
    yield setup
    setup.registry.stop()


# The keys every probe result has (shared by the classifier and prober tests).
RESULT_KEYS = {
    "outcome",
    "reachable",
    "status_code",
    "reason",
    "url",
    "api_version",
    "oci_compliant",
    "auth",
    "tls",
    "latency_ms",
    "checked_at",
    "error",
    "failure_kind",
    "warnings",
    "image",
    "rate_limit",
    "capabilities",
}
