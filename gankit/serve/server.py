"""The HTTP server of `gankit serve`: the standard library's ThreadingHTTPServer, three kinds of
routes (the page's files, a JSON description of the generators, PNG pictures), and the rule that
it answers only this machine unless told otherwise.

Every bad request gets a 4xx status and a one-line text message; an unexpected failure while
drawing gets a 500 with a one-line message (the traceback goes to the terminal, not the page).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from gankit.errors import UserError
from gankit.serve.explorer import Explorer
from gankit.serve.params import BadRequest, parse_picture

DEFAULT_HOST = "127.0.0.1"
ALLOW_REMOTE_FLAG = "--allow-remote"
# The page's files, by URL: the only files this server reads from disk, all inside the package.
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/explorer.js": ("explorer.js", "text/javascript; charset=utf-8"),
          "/explorer.css": ("explorer.css", "text/css; charset=utf-8")}
PICTURES = {"/api/grid.png": "grid", "/api/interpolation.png": "interpolation"}


def page_file(name: str) -> bytes:
    """One of the page's files, read from the installed package."""
    return resources.files("gankit.serve").joinpath("page", name).read_bytes()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ExplorerHandler(BaseHTTPRequestHandler):
    """GET only: the page, /api/models (JSON), /api/grid.png and /api/interpolation.png."""

    explorer: Explorer  # set on the subclass `make_server` makes
    quiet = True
    server_version = "gankit-serve"

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        url = urlsplit(self.path)
        try:
            if url.path in STATIC:
                name, kind = STATIC[url.path]
                self._send(HTTPStatus.OK, page_file(name), kind)
            elif url.path == "/api/models":
                self._send(HTTPStatus.OK, json.dumps(self.explorer.describe()).encode(), "application/json")
            elif url.path in PICTURES:
                kind = PICTURES[url.path]
                req = parse_picture(url.query, kind, len(self.explorer.served))
                png = self.explorer.grid_png(req) if kind == "grid" else self.explorer.interpolation_png(req)
                name = f"gankit-{kind}-model{req.model}-seed{req.seed}.png"
                extra = {"Content-Disposition": f'attachment; filename="{name}"'} if req.download else {}
                self._send(HTTPStatus.OK, png, "image/png", extra)
            else:
                raise BadRequest(f"no such page {url.path!r}; the explorer is at /", status=404)
        except BadRequest as exc:
            self._send(exc.status, (str(exc) + "\n").encode(), "text/plain; charset=utf-8")
        except Exception as exc:  # noqa: BLE001 - the page gets one line, the terminal the traceback
            traceback.print_exc(file=sys.stderr)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not draw: {type(exc).__name__}: {exc}\n".encode(),
                       "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET requests: the explorer changes nothing\n",
                   "text/plain; charset=utf-8", {"Allow": "GET"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _send(self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the standard library's name
        if not self.quiet:
            super().log_message(format, *args)


def make_server(explorer: Explorer, host: str = DEFAULT_HOST, port: int = 8000, allow_remote: bool = False,
                quiet: bool = True) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0: a free one), not yet serving. Refuses, with a
    UserError naming --allow-remote, any address other machines could reach unless allow_remote."""
    if not is_loopback(host) and not allow_remote:
        raise UserError(f"--host {host}: gankit serve answers only this machine ({DEFAULT_HOST}) unless you add "
                        f"{ALLOW_REMOTE_FLAG}; with it, anyone who can reach the port can use the page")
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: give a port between 1 and 65535 (0 picks a free one)")
    handler = type("BoundExplorerHandler", (ExplorerHandler,), {"explorer": explorer, "quiet": quiet})
    # ThreadingHTTPServer's threads are daemons: a browser's open connection never holds up Ctrl-C.
    server_class = ThreadingHTTPServer if ":" not in host else type(
        "ThreadingHTTPServerV6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    try:
        server = server_class((host, port), handler)
    except OSError as exc:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                        "pick another --port (0 picks a free one)") from None
    return server


def address(server: ThreadingHTTPServer) -> str:
    """The page's URL."""
    host, port = server.server_address[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve_until_interrupted(server: ThreadingHTTPServer) -> None:
    """Serve until Ctrl-C, then close the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
