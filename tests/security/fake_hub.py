"""A stand-in for the Hugging Face Hub's sign-in, for the tests: an OpenID Connect provider
(discovery, authorize, token with a signed id_token, JWKS, userinfo) and `/api/whoami-v2`.

Gradio's login routes (authlib) and chattr's token check talk to it over real HTTP, exactly as
they talk to huggingface.co on a Space; only the accounts are made up.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from chattr.testing.threaded_server import ThreadedServer

CLIENT_ID = "chatacter-test-client"
CLIENT_SECRET = "chatacter-test-secret"


class FakeHub:
    """The Hub's sign-in on a free local port; `tokens` maps API tokens to user names."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
        self.tokens: dict[str, str] = {}
        self.whoami_calls = 0
        self.signing_in_as = "ada"
        self._codes: dict[str, dict[str, Any]] = {}
        self.server = ThreadedServer(self._app(), lifespan="off")

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FakeHub:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/oauth/authorize", self.authorize),
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/oauth/userinfo", self.userinfo),
                Route("/oauth/jwks", self.jwks),
                Route("/api/whoami-v2", self.whoami),
            ]
        )

    def profile(self, name: str) -> dict[str, str]:
        return {
            "sub": f"id-{name}",
            "name": name.title(),
            "preferred_username": name,
            "profile": f"{self.url}/{name}",
            "picture": f"{self.url}/{name}.png",
        }

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/oauth/authorize",
                "token_endpoint": f"{self.url}/oauth/token",
                "userinfo_endpoint": f"{self.url}/oauth/userinfo",
                "jwks_uri": f"{self.url}/oauth/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    async def authorize(self, request: Request) -> Response:
        """Signs in `signing_in_as` at once (the person clicked "Allow")."""
        query = request.query_params
        if query.get("client_id") != CLIENT_ID:
            return JSONResponse({"error": "unknown client"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self._codes[code] = {"nonce": query.get("nonce"), "user": self.signing_in_as}
        target = query["redirect_uri"]
        joiner = "&" if "?" in target else "?"
        return RedirectResponse(
            target + joiner + urlencode({"code": code, "state": query.get("state", "")})
        )

    async def token(self, request: Request) -> Response:
        form = await request.form()
        grant = self._codes.pop(str(form.get("code")), None)
        if grant is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 3600,
            "auth_time": now,
            "nonce": grant["nonce"],
            **self.profile(grant["user"]),
        }
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key)
        access = "hf_oauth_" + secrets.token_urlsafe(12)
        self.tokens[access] = grant["user"]
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": 3600,
                "scope": "openid profile",
                "id_token": id_token,
            }
        )

    async def userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(self.profile(self.tokens[token]))

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def whoami(self, request: Request) -> Response:
        self.whoami_calls += 1
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return JSONResponse({"error": "Invalid credentials in Authorization header"}, 401)
        return JSONResponse({"type": "user", "name": self.tokens[token], "fullname": "Test"})
