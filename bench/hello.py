"""The baseline server of bench.api: a bare aiohttp app answering GET / with a small JSON body.

``python -m bench.hello --port P``. It runs on uvloop like ``regdb api`` (regdb/cli.py), so the
ratio of a regdb GET to it measures regdb's own work per request.
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


def serve(app: web.Application, port: int, backlog: int = 128) -> None:
    """Run a benchmark peer (this app, the fleet) on loopback with uvloop, quietly."""
    import uvloop

    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=backlog)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    app = web.Application()
    app.router.add_get("/", hello)
    serve(app, parser.parse_args().port)


if __name__ == "__main__":
    main()
