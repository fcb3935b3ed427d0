"""Helpers of the viewer tests: a tiny random generator checkpoint, synthetic images with
masks, encoded and hostile uploads, and the viewer's own server run in a thread."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

WIDTH = 8  # the smallest generator the config accepts: tests stay fast
SIZE = 256
IMAGE_SHAPES = ((120, 150), (90, 90), (150, 110))  # (H, W), deliberately not square


def write_checkpoint(path: Path, seed: int = 0) -> Path:
    from endoxai.config import Config
    from endoxai.models import Generator
    from endoxai.train.checkpoint import FORMAT, VERSION

    torch.manual_seed(seed)
    config = Config().override(model={"width": WIDTH}, data={"image_size": SIZE})
    generator = Generator(width=WIDTH)
    with torch.no_grad():  # a visible mask: a random generator's logits hover around 0
        generator.up8[0].bias.fill_(0.01)
    torch.save({"format": FORMAT, "version": VERSION, "config": config.to_dict(),
                "generator": generator.state_dict()}, path)
    return path


def write_images(root: Path) -> tuple[Path, Path]:
    """images/caseI.png with a bright disc, masks/caseI.png of a disc that only partly agrees
    with it (so that the Dice scores differ between images)."""
    rng = np.random.default_rng(0)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for i, (h, w) in enumerate(IMAGE_SHAPES):
        yy, xx = np.mgrid[:h, :w]
        disc = (yy - h // 2) ** 2 + (xx - w // 2) ** 2 < (h // (3 + i)) ** 2
        image = rng.integers(0, 90, size=(h, w, 3), dtype=np.uint8)
        image[disc] = (215, 120, 95)
        Image.fromarray(image).save(images / f"case{i}.png")
        truth = (yy - h // 3) ** 2 + (xx - w // 3) ** 2 < (h // 4) ** 2
        Image.fromarray(truth.astype(np.uint8) * 255).save(masks / f"case{i}.png")
    return images, masks


def make_viewer(view_files: SimpleNamespace, masks: bool = True):
    from endoxai.view.store import ImageStore
    from endoxai.view.viewer import Viewer, load_model

    model, config, label = load_model(view_files.checkpoint)
    store = ImageStore(config.data.image_size)
    added = store.add_files([view_files.images], view_files.masks if masks else None)
    viewer = Viewer(model, config, label, store)
    viewer.score(added, progress=False)
    return viewer


class LiveServer:
    """The viewer's own uvicorn server (``make_server``) in a thread; stopped on ``close``."""

    def __init__(self, viewer, host: str = "127.0.0.1") -> None:
        from endoxai.view.server import make_server, url_of

        self.viewer = viewer
        self.server, self.sock = make_server(viewer, host, 0)
        self.url = url_of(self.sock)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the viewer server did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels but holds almost no data: a
    decompression bomb as far as any decoder that trusts the header is concerned."""
    data = bytearray(encoded(np.zeros((1, 1, 3), np.uint8), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


RGB = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
