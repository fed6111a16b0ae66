"""A registry with token authentication, as GHCR, Quay and Docker Hub use it: Debian's docker-registry started with
``auth: token`` and a small token server of the test's own (checks Basic credentials, issues RS256 JWTs whose x5c
certificate the registry trusts). Both are started here and stopped by pid at the end."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from edgebench.image.tester import free_port

from ..helpers import stop_process, tool

SERVICE, ISSUER = "edgebench-test-registry", "edgebench-test-token-issuer"
USER, PASSWORD = "token-user", "token-password-4f1c"


def _key_and_certificate():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


class TokenServer(http.server.ThreadingHTTPServer):
    """GET /token?service=...&scope=repository:NAME:pull,push with Basic auth -> {"token": JWT}."""

    def __init__(self, key_pem, cert_der):
        super().__init__(("127.0.0.1", 0), TokenHandler)
        self.key_pem, self.cert_der = key_pem, cert_der
        self.requests = []


class TokenHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        import jwt

        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        given = self.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.server.requests.append({"scope": query.get("scope", []), "authorized": given == expected})
        if given != expected:
            self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            return
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": USER, "aud": query.get("service", [SERVICE])[0], "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        token = jwt.encode(claims, self.server.key_pem, algorithm="RS256",
                           headers={"x5c": [base64.b64encode(self.server.cert_der).decode()]})
        self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

    def _answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory, engine):
    """``{"registry": "127.0.0.1:PORT", "user", "password", "tokens": [requests the token server saw]}``."""
    registry_bin = tool("docker-registry", "scripts/services.sh installs Debian's docker-registry")
    folder = tmp_path_factory.mktemp("token-registry")
    key_pem, cert_pem, cert_der = _key_and_certificate()
    (folder / "root.pem").write_bytes(cert_pem)
    tokens = TokenServer(key_pem, cert_der)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    port = free_port()
    (folder / "config.yml").write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {folder / "data"}
http:
  addr: 127.0.0.1:{port}
auth:
  token:
    realm: http://127.0.0.1:{tokens.server_address[1]}/token
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {folder / "root.pem"}
""")
    log = (folder / "log").open("w")
    process = subprocess.Popen([registry_bin, "serve", str(folder / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401 and "Bearer" in exc.headers.get("WWW-Authenticate", "")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the token registry did not start: {(folder / 'log').read_text()}") from None
                time.sleep(0.2)
        yield {"registry": f"127.0.0.1:{port}", "user": USER, "password": PASSWORD, "tokens": tokens.requests}
    finally:
        stop_process(process)
        tokens.shutdown()
        log.close()
