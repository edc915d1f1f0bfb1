"""A fake fleet of registries in ONE aiohttp process, for bench.health.

``python -m bench.fleet --port P`` answers ``/r/{n}/v2/`` like registry number n would
(the kind is a pure function of n, see `kind`):

- ``ok`` (76 %): 200, ``Docker-Distribution-API-Version: registry/2.0``, body ``{}``;
- ``auth`` (20 %): 401 with ``WWW-Authenticate: Bearer realm="http://127.0.0.1:P/token",
  service="fleet"`` unless the request carries the token that ``GET /token`` hands out
  (against Basic credentials), then 200 like ``ok``;
- ``slow`` (2 %): like ``ok`` after a 2 s sleep;
- ``down`` (2 %): 503.

``GET /stats`` returns the request counts per kind, and under ``all`` every request a prober
sent (``/r/...`` and ``/token``, whatever the answer: a capability check's 404 too); the
benchmark reads it before and after.
For the chaos soak: ``POST /flip/{n}?down=1`` (or ``0``) takes registry n down (503) or back,
and ``POST /hook`` is an alert receiver whose deliveries ``GET /hook`` lists.
Loopback only; uses uvloop like regdb's own processes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections import Counter

from aiohttp import web
from aiohttp.typedefs import Handler

from bench.hello import serve

TOKEN = "fleet-token-0123456789"
SLOW_S = 2.0
V2_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}
KINDS = ("ok", "auth", "slow", "down")


def kind(n: int) -> str:
    """What registry n does: 2 % slow, 2 % down, 20 % token auth, the rest plain 200."""
    r = n % 50
    if r == 0:
        return "slow"
    if r == 1:
        return "down"
    if r < 12:
        return "auth"
    return "ok"


def make_app(port: int) -> web.Application:
    counts: Counter[str] = Counter()
    forced_down: set[int] = set()
    received: list[object] = []
    challenge = f'Bearer realm="http://127.0.0.1:{port}/token",service="fleet"'
    unauthorized = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'

    def ok() -> web.Response:
        return web.Response(body=b"{}", content_type="application/json", headers=V2_HEADERS)

    async def v2(request: web.Request) -> web.Response:
        try:
            n = int(request.match_info["n"])
        except ValueError:
            raise web.HTTPNotFound() from None
        k = kind(n)
        counts[k] += 1
        if n in forced_down:
            return web.Response(status=503, text="registry taken down by the soak")
        if k == "slow":
            await asyncio.sleep(SLOW_S)
        elif k == "down":
            return web.Response(status=503, text="registry down for maintenance")
        elif k == "auth" and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            counts["auth_401"] += 1
            return web.Response(
                status=401,
                body=unauthorized,
                content_type="application/json",
                headers={**V2_HEADERS, "WWW-Authenticate": challenge},
            )
        return ok()

    async def token(request: web.Request) -> web.Response:
        counts["token"] += 1
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return web.Response(status=401, text="credentials required")
        try:
            base64.b64decode(auth[6:], validate=True)
        except ValueError:
            return web.Response(status=400, text="bad credentials")
        return web.json_response({"token": TOKEN, "access_token": TOKEN, "expires_in": 300})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(dict(counts))

    async def flip(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        (forced_down.add if request.query.get("down") == "1" else forced_down.discard)(n)
        return web.json_response(sorted(forced_down))

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    async def deliveries(request: web.Request) -> web.Response:
        return web.json_response(received)

    @web.middleware
    async def count_all(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(("/r/", "/token")):
            counts["all"] += 1
        return await handler(request)

    app = web.Application(middlewares=[count_all])
    app.router.add_get("/r/{n}/v2/", v2)
    app.router.add_get("/token", token)
    app.router.add_get("/stats", stats)
    app.router.add_post("/flip/{n}", flip)
    app.router.add_post("/hook", hook)
    app.router.add_get("/hook", deliveries)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(make_app(args.port), args.port, backlog=1024)


if __name__ == "__main__":
    main()
