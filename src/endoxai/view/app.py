"""The viewer's web app (Starlette): one static page and a small JSON API over ``Viewer``.

Routes (ids are the store's, never paths; every error is JSON ``{"error": "one line"}``):

- ``GET /``, ``GET /static/*``: the page, its script and style sheet (package data).
- ``GET /api/info``: model label, image size, composites, upload limits.
- ``GET /api/images``: the gallery, worst Dice first. ``POST /api/images``: an upload, the raw
  file as the body and its name in ``X-Filename`` (a header no cross-site form can send); a
  refused file gets ``{"error": reason}`` with status 200, a body over the limit status 413.
- ``GET /api/images/{id}``: scores and shares of one image; ``.../picture.png`` (model input),
  ``.../mask.png`` (TP / FP / FN layer), ``.../thumb.png``.
- ``POST /api/relevance``: ``{image, composite, target, client, seq}`` -> maps as data URLs,
  totals and timings; ``{"superseded": true}`` when a newer request of the same client arrived
  first. ``GET /api/results/{id}.npz``: the arrays of a recent answer.

Model work runs in one worker thread; a request still queued when a newer one of its page
arrives is dropped before it starts (20 rapid clicks cost two passes, not twenty).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from endoxai.errors import ItemError
from endoxai.explain import COMPOSITES
from endoxai.explain.targets import Target
from endoxai.view import render
from endoxai.view.store import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    StoredImage,
    UploadRefused,
    too_large_message,
)
from endoxai.view.viewer import DEFAULT_COMPOSITE, Viewer, npz_arrays, parse_target
from endoxai.view.web import STATIC, HostCheck, SecurityHeaders

MAX_JSON_BYTES = 4096  # a relevance request is a few dozen bytes
KEPT_RESULTS = 16  # answers whose npz can still be downloaded
KEPT_CLIENTS = 256  # pages whose latest request is remembered


class Superseded(Exception):
    """A newer request of the same page arrived before this one started."""


class Worker:
    """One thread for all model work, and the latest request number of each page."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="endoxai-view")
        self._latest: OrderedDict[str, int] = OrderedDict()

    async def run(self, fn, *args):
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    async def run_latest(self, client: str, seq: int, fn, *args):
        """Run ``fn`` unless a request with a larger ``seq`` from ``client`` came in meanwhile."""
        self._latest[client] = max(seq, self._latest.get(client, seq))
        self._latest.move_to_end(client)
        while len(self._latest) > KEPT_CLIENTS:
            self._latest.popitem(last=False)

        def job():
            if self._latest.get(client, seq) != seq:
                raise Superseded
            return fn(*args)

        return await self.run(job)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Answers:
    """Relevance answers as the page receives them, and the arrays of the recent ones (for the
    npz download). ``answer`` runs in the worker thread; ``arrays`` is one dict lookup."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self._arrays: OrderedDict[str, dict] = OrderedDict()
        self._ids = itertools.count(1)

    def answer(self, image: StoredImage, composite: str, target: Target) -> dict:
        """``Viewer.ask`` rendered: the input map and every block's map as PNG data URLs, their
        colour scales and totals, the skip-flow table, timings and the id of the arrays."""
        answer = self.viewer.ask(image, composite, target)
        start = time.perf_counter()
        png, limit = render.relevance_map(answer.input)
        layers = []
        for name, relevance in answer.layers.items():
            layer_png, layer_limit = render.layer_map(relevance)
            layers.append({"name": name, "shape": answer.shapes[name], "png":
                           render.data_url(layer_png), "limit": layer_limit,
                           "total": answer.totals[name]})
        result_id = f"r{next(self._ids)}"
        self._arrays[result_id] = npz_arrays(answer, self.viewer.prediction(image), image,
                                             composite, target)
        while len(self._arrays) > KEPT_RESULTS:
            self._arrays.popitem(last=False)
        seconds = dict(answer.seconds, render=time.perf_counter() - start)
        return {"image": image.id, "composite": composite, "input": render.data_url(png),
                "limit": limit, "totals": answer.totals, "target_pixels": answer.target_pixels,
                "layers": layers, "seconds": seconds, "forward_cached": answer.forward_cached,
                "result": result_id,
                "flow": None if answer.flow is None else render.flow_rows(answer.flow)}

    def arrays(self, result_id: str) -> dict | None:
        return self._arrays.get(result_id)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(viewer: Viewer, allowed_hosts: tuple[str, ...] | None = None) -> Starlette:
    """The ASGI app for ``viewer``. ``allowed_hosts``: Host header names accepted (None: any);
    a server bound to the loopback interface accepts only loopback names, so that a web page
    cannot reach it through a DNS name that points to 127.0.0.1."""
    worker = Worker()
    answers = Answers(viewer)
    store = viewer.store

    def find(image_id: str):
        try:
            return store.get(image_id)
        except KeyError:
            return None

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def info(request: Request) -> Response:
        return JSONResponse({
            "model": viewer.label, "image_size": viewer.size,
            "composites": {name: c.description for name, c in COMPOSITES.items()},
            "default_composite": DEFAULT_COMPOSITE,
            "max_upload_bytes": MAX_UPLOAD_BYTES, "max_upload_pixels": MAX_UPLOAD_PIXELS,
        })

    async def images(request: Request) -> Response:
        return JSONResponse({"images": [image.summary() for image in store.listing()]})

    async def upload(request: Request) -> Response:
        name = unquote(request.headers.get("x-filename", ""))
        if not name:
            return error(400, "uploads are accepted from the viewer page only (no X-Filename)")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            return error(413, too_large_message(int(declared)))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPLOAD_BYTES:
                return error(413, too_large_message(len(body)))
        try:
            image = await run_in_threadpool(store.add_upload, bytes(body), name)
        except UploadRefused as err:
            # 200: the upload was received and judged; the page shows the reason. (A 4xx would
            # also make the browser log a console error for what is an ordinary outcome.)
            return JSONResponse({"error": str(err)})
        return JSONResponse(image.summary())

    async def image_info(request: Request) -> Response:
        image = find(request.path_params["image_id"])
        if image is None:
            return error(404, "no such image")
        try:
            prediction = await worker.run(viewer.prediction, image)
        except ItemError as err:
            return error(422, str(err))
        truth = prediction.pixels.truth
        return JSONResponse({
            **image.summary(), "image_size": viewer.size,
            "predicted_share": float(prediction.mask.mean()),
            "truth_share": None if truth is None else float(truth.mean()),
        })

    async def image_png(request: Request) -> Response:
        image = find(request.path_params["image_id"])
        kind = request.path_params["kind"]
        if image is None or kind not in ("picture", "mask", "thumb"):
            return error(404, "no such image")
        try:
            if kind == "thumb":
                pixels = await run_in_threadpool(store.pixels, image)
                array = render.thumbnail(pixels.image, image.height, image.width)
            else:
                prediction = await worker.run(viewer.prediction, image)
                array = (prediction.pixels.image if kind == "picture"
                         else render.mask_layer(prediction.mask, prediction.pixels.truth))
        except ItemError as err:
            return error(422, str(err))
        return Response(render.png_bytes(array), media_type="image/png")

    async def relevance(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_JSON_BYTES:
            return error(413, "request too large")
        try:
            spec = json.loads(body)
            image = find(str(spec["image"]))
            composite = str(spec.get("composite", DEFAULT_COMPOSITE))
            target = parse_target(spec.get("target"), viewer.size)
            client, seq = str(spec.get("client", ""))[:64], int(spec.get("seq", 0))
        except (ValueError, KeyError, TypeError) as err:
            return error(400, f"bad request: {err}")
        if image is None:
            return error(404, "no such image")
        if composite not in COMPOSITES:
            return error(400, f"unknown composite {composite!r}")
        try:
            payload = await worker.run_latest(client, seq, answers.answer, image, composite,
                                              target)
        except Superseded:
            return JSONResponse({"superseded": True})
        except ItemError as err:
            return error(422, str(err))
        return JSONResponse(payload)

    async def result_npz(request: Request) -> Response:
        arrays = answers.arrays(request.path_params["result_id"])
        if arrays is None:
            return error(404, "this result is no longer kept; ask again")
        name = f"{arrays['source'].item().rsplit('.', 1)[0]}_relevance.npz"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return Response(render.npz_bytes(arrays), media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{safe}"'})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        worker.close()

    routes = [
        Route("/", index),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/info", info),
        Route("/api/images", images, methods=["GET"]),
        Route("/api/images", upload, methods=["POST"]),
        Route("/api/images/{image_id}", image_info),
        Route("/api/images/{image_id}/{kind}.png", image_png),
        Route("/api/relevance", relevance, methods=["POST"]),
        Route("/api/results/{result_id}.npz", result_npz),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)
    return app
