"""`endoxai view` on the command line: one-line errors before serving, and Ctrl-C stops it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from endoxai.cli import main
from endoxai.view.server import open_socket


def test_masks_without_images_is_a_user_error(view_files, capsys):
    assert main(["view", "--checkpoint", str(view_files.checkpoint), "--masks",
                 str(view_files.masks)]) == 2
    assert "--masks needs --images" in capsys.readouterr().err


def test_a_missing_checkpoint_is_a_user_error(view_files, capsys):
    assert main(["view", "--checkpoint", str(view_files.root / "nope.pt"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and len(err.strip().splitlines()) == 1


def test_a_busy_port_fails_before_the_model_loads(view_files, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["view", "--checkpoint", str(view_files.root / "not-even-read.pt"),
                     "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_stops_the_server_cleanly(view_files):
    command = [sys.executable, "-m", "endoxai", "-q", "view", "--checkpoint",
               str(view_files.checkpoint), "--images", str(view_files.images), "--masks",
               str(view_files.masks), "--port", "0"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "open http://" in line:
                break
        url = next((w for line in lines for w in line.split() if w.startswith("http://")), None)
        assert url is not None, "".join(lines)
        with urllib.request.urlopen(url + "api/images", timeout=60) as response:
            assert len(json.load(response)["images"]) == 3
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        rest = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 130
    assert "Traceback" not in rest and "interrupted" in rest
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    open_socket("127.0.0.1", port).close()  # a new viewer can listen on the port at once
