"""Baseline server for bench.api: a bare aiohttp app answering GET / with a small JSON body.

Run as ``python -m bench.hello --port P``. It uses uvloop exactly like ``regdb api`` does
(see regdb/cli.py ``_run_api``), so the ratio to it measures regdb's own work per request.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from bench._common import serve_app


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = web.Application()
    app.router.add_get("/", hello)
    serve_app(app, args.port)


if __name__ == "__main__":
    main()
