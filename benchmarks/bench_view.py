"""How long ``endoxai view`` takes to answer a click: a pixel target at the model's size.

Rows, run in interleaved rounds (``common.interleaved``), each round on a new pixel:

- ``backward pass``: ``CachedExplainer.relevance`` through the image's cached forward pass,
  the LRP work of a click;
- ``answer (server)``: what the server does for a click on an image it has seen: the backward
  pass, the input map and the 16 block maps as PNGs, the skip-flow table and the npz arrays
  (``app.Answers.answer``; the forward pass is cached);
- ``answer, uncached``: the same for an image whose forward pass is not cached (a new image or
  composite; measured by emptying the cache before each call);
- ``HTTP round trip``: ``POST /api/relevance`` to the viewer's own server on 127.0.0.1 from a
  client in this process, for an image it has seen: the answer plus JSON and the loopback.

The goal: a pixel answer at 256² with the bundled model within 0.5 s on a 2-core CPU.

Example: ``python benchmarks/bench_view.py --checkpoint RUN/best.pt --threads 2 --repeats 20``
(default model: the bundled one; default image: the first Kvasir-SEG training image, or a
synthetic one when the data folder is absent).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import interleaved, kvasir_seg, load_average, machine, median, script_main, split_ids
from common import table as md_table
from PIL import Image

from endoxai.view.app import Answers
from endoxai.view.server import make_server
from endoxai.view.store import ImageStore
from endoxai.view.viewer import DEFAULT_COMPOSITE, Viewer, load_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, help="model (default: the bundled one)")
    p.add_argument("--image", type=Path, help="image (default: first Kvasir-SEG training image)")
    p.add_argument("--data", type=Path, help="Kvasir-SEG folder (default: the data folder's)")
    p.add_argument("--composite", default=DEFAULT_COMPOSITE, help="LRP composite (default: "
                   "%(default)s, the viewer's default)")
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")


def default_image(data: Path | None, folder: Path) -> Path:
    kvasir = kvasir_seg(data)
    if kvasir is not None:
        return kvasir / "images" / f"{split_ids(kvasir, 'train', 1)[0]}.jpg"
    path = folder / "synthetic.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 360, 3), dtype=np.uint8)).save(path)
    return path


def run(args: argparse.Namespace) -> str:
    model, config, label = load_model(args.checkpoint)
    size = config.data.image_size
    with tempfile.TemporaryDirectory() as tmp:
        image_path = args.image or default_image(args.data, Path(tmp))
        store = ImageStore(size)
        image = store.add_files([image_path])[0]
        viewer = Viewer(model, config, label, store)
        answers = Answers(viewer)
        rng = np.random.default_rng(0)

        def pixel() -> tuple:
            return ("pixel", *(int(v) for v in rng.integers(0, size, 2)))

        explainer = viewer.explainer(args.composite)
        forward = viewer.forward(image, args.composite)
        server, sock = make_server(viewer, "127.0.0.1", 0)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        port = sock.getsockname()[1]
        seq = iter(range(1, 10**9))

        def http_answer() -> None:
            _, y, x = pixel()
            body = json.dumps({"image": image.id, "composite": args.composite, "client": "bench",
                               "seq": next(seq), "target": {"kind": "pixel", "y": y, "x": x}})
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request("POST", "/api/relevance", body,
                               {"Content-Type": "application/json"})
            reply = json.loads(connection.getresponse().read())
            connection.close()
            if "input" not in reply:
                raise SystemExit(f"no answer from the viewer: {reply}")

        def uncached() -> None:
            viewer.forget_forwards()
            answers.answer(image, args.composite, pixel())

        methods = {
            "backward pass": lambda: explainer.relevance(forward, pixel()),
            "answer (server)": lambda: answers.answer(image, args.composite, pixel()),
            "answer, uncached": uncached,
            "HTTP round trip": http_answer,
        }
        load_before = load_average()
        wall, _ = interleaved(methods, args.repeats, args.warmup)
        load_after = load_average()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    facts = machine()
    rows = [[name, f"{median(wall[name]):.3f}", f"{min(wall[name]):.3f}",
             f"{max(wall[name]):.3f}"] for name in methods]
    width = getattr(config.model, "width", 64)
    lines = [
        f"## endoxai view: a pixel answer at {size}², {label} (width {width}), "
        f"{args.composite}, fp32",
        "",
        md_table(["step", "median s", "min s", "max s"], rows),
        "",
        f"{args.repeats} rounds after {args.warmup} warm-up; image {Path(image_path).name} "
        f"({image.width}x{image.height}); load average {load_before} before, {load_after} after.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in facts.items()),
        "",
        "Command: python " + " ".join(sys.argv),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
