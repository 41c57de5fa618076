"""A hospital's identity provider (OpenID Connect), as far as carepath sees it: a JWKS endpoint on
loopback and the RS256 tokens it signs. Keys are made by the test; nothing leaves the machine."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class IdentityProvider:
    """A hospital's identity provider, as far as carepath sees it: a JWKS endpoint and the tokens it signs."""

    ISSUER = "https://sso.hospital.example/realms/staff"

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = json.dumps({"keys": [public | {"kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

        class Keys(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(jwks)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(self, key=None, **claims) -> str:
        now = datetime.now(UTC)
        body = {"iss": self.ISSUER, "aud": "carepath", "sub": "f3a9-subject", "email": "li.na@hospital.example",
                "iat": now, "exp": now + timedelta(minutes=5)} | claims
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": "k1"})
