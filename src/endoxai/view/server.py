"""Serving the viewer: bind the socket, warn about open binds, run uvicorn until Ctrl-C."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from endoxai.errors import Interrupted, UserError
from endoxai.view import DEFAULT_HOST, DEFAULT_PORT
from endoxai.view.app import create_app
from endoxai.view.store import ImageStore
from endoxai.view.viewer import Viewer, load_model
from endoxai.view.web import LOOPBACK_NAMES

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 64
SHUTDOWN_GRACE_S = 3  # Ctrl-C waits at most this long for answers in flight


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (0 = any free port); UserError if that fails."""
    if not 0 <= port <= 65535:
        raise UserError(f"port must be between 0 and 65535; got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as err:
        raise UserError(f"cannot listen on {host}: unknown host ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)  # from here on connections wait until the server accepts
    except OSError as err:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror or err}; choose "
                        "another --port") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(viewer: Viewer, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
                ) -> tuple[uvicorn.Server, socket.socket]:
    """The uvicorn server of ``viewer`` and its bound socket (run with ``server.run([sock])``).

    A host other than a loopback one gets a warning (the viewer has no authentication) and
    accepts any Host header; a loopback one accepts only loopback names.
    """
    sock = open_socket(host, port)
    loopback = is_loopback(host)
    if not loopback:
        logger.warning("listening on %s: the viewer has no authentication; anyone who can reach "
                       "this address can see the images and upload files", host)
    app = create_app(viewer, allowed_hosts=LOOPBACK_NAMES if loopback else None)
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                            lifespan="on", ws="none",
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    return _Server(config), sock


class _Server(uvicorn.Server):
    """uvicorn's server, remembering the first stop signal it caught. uvicorn raises that signal
    again after its graceful shutdown, but asyncio's own SIGINT handler then only cancels a task
    that may already have finished, so whether the caller sees KeyboardInterrupt is a race."""

    stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stopped_by is None:
            self.stopped_by = int(sig)
        super().handle_exit(sig, frame)


def serve(viewer: Viewer, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``viewer`` until interrupted (Ctrl-C / SIGTERM: in-flight answers finish, then the
    signal is raised again so the caller sees KeyboardInterrupt as usual).

    ``on_ready(url)`` is called once the socket is bound, before requests are served.
    """
    server, sock = make_server(viewer, host, port)
    if on_ready is not None:
        on_ready(url_of(sock))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if server.stopped_by is not None:  # exit 130 / 143 every time, not only when the race is won
        raise Interrupted(server.stopped_by)


def launch(checkpoint: str | Path | None = None, model: str | None = None,
           images: Sequence[str | Path] = (), masks: str | Path | None = None,
           host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, progress: bool = True,
           on_ready: Callable[[str], None] | None = None) -> None:
    """``endoxai view``: load the model once, register and score the images, serve until Ctrl-C.

    The model: ``checkpoint`` or the bundled ``model`` (``endoxai.weights.resolve_model``; neither:
    the bundled polyp model). The port is tried before the model is loaded, so a busy port fails
    at once.
    """
    if masks is not None and not images:
        raise UserError("--masks needs --images: the masks are paired with those images")
    open_socket(host, port).close()
    model, config, label = load_model(checkpoint)
    store = ImageStore(config.data.image_size)
    added = store.add_files(images, masks) if images else []
    viewer = Viewer(model, config, label, store)
    viewer.score(added, progress=progress)
    logger.info("view: %d image(s), %d with a truth mask, model %s at %d px", len(added),
                sum(image.truth_path is not None for image in added), label,
                config.data.image_size)
    serve(viewer, host, port, on_ready)
