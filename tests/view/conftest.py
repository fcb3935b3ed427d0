"""Fixtures of the viewer tests: the tiny checkpoint and images (once per session) and a live
viewer server on a free loopback port (once per module)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: view_fixtures
from view_fixtures import LiveServer, make_viewer, write_checkpoint, write_images  # noqa: E402


@pytest.fixture(scope="session")
def view_files(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("view")
    images, masks = write_images(root / "data")
    checkpoint = write_checkpoint(root / "tiny.pt")
    return SimpleNamespace(root=root, images=images, masks=masks, checkpoint=checkpoint)


@pytest.fixture(scope="module")
def live_server(view_files):
    torch.set_num_threads(1)
    server = LiveServer(make_viewer(view_files))
    yield server
    server.close()
