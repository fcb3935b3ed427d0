"""The viewer's server: it binds 127.0.0.1 unless told otherwise (and warns then), answers only
to loopback Host names there, addresses images by id only, and enforces the upload limits over
HTTP; rapid requests supersede each other and leave it responsive."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import uvicorn.server as uvicorn_server

from endoxai.cli import build_parser
from endoxai.errors import Interrupted, UserError
from endoxai.view import server as server_module
from endoxai.view.app import Superseded, Worker
from endoxai.view.server import is_loopback, make_server, open_socket
from endoxai.view.store import MAX_UPLOAD_BYTES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: view_fixtures
from view_fixtures import RGB, encoded, make_viewer, png_claiming  # noqa: E402


def call(server, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, {"text": data.decode(errors="replace")}


def upload(server, data: bytes, name: str = "x.png") -> tuple[int, dict]:
    return call(server, "POST", "/api/images", data, {"X-Filename": quote(name)})


def test_the_default_bind_is_loopback_only(live_server):
    assert build_parser().parse_args(["view"]).host == "127.0.0.1"
    assert live_server.sock.getsockname()[0] == "127.0.0.1"


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
    ("example.org", False),
])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_binding_another_address_warns_about_no_authentication(view_files, caplog):
    viewer = make_viewer(view_files, masks=False)
    with caplog.at_level(logging.WARNING, logger="endoxai.view.server"):
        _, sock = make_server(viewer, "127.0.0.1", 0)
        sock.close()
        assert caplog.records == []
        _, sock = make_server(viewer, "0.0.0.0", 0)
        sock.close()
    assert len(caplog.records) == 1
    assert "no authentication" in caplog.records[0].getMessage()


def test_a_stop_signal_caught_by_the_server_ends_serve_as_an_interruption(view_files, monkeypatch):
    # uvicorn raises the caught signal again after shutting down, but asyncio's SIGINT handler
    # may turn that into nothing; without that re-raise serve must still end as interrupted
    monkeypatch.setattr(uvicorn_server.signal, "raise_signal", lambda sig: None)
    made = {}

    def spy(*args, **kwargs):
        made["server"], sock = make_server(*args, **kwargs)
        threading.Timer(0.5, made["server"].handle_exit, (signal.SIGINT, None)).start()
        return made["server"], sock

    monkeypatch.setattr(server_module, "make_server", spy)
    with pytest.raises(Interrupted) as stopped:
        server_module.serve(make_viewer(view_files, masks=False), "127.0.0.1", 0)
    assert stopped.value.signum == signal.SIGINT


def test_a_busy_port_is_a_one_line_user_error(live_server):
    with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{live_server.port}"):
        open_socket("127.0.0.1", live_server.port)
    with pytest.raises(UserError, match="port must be between"):
        open_socket("127.0.0.1", 70_000)


def test_only_loopback_host_names_are_answered(live_server):
    port = live_server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert call(live_server, "GET", "/api/info", headers={"Host": host})[0] == 200
    status, _ = call(live_server, "GET", "/api/info", headers={"Host": f"evil.example:{port}"})
    assert status == 400


def test_the_page_and_its_assets_come_from_the_server_with_a_strict_policy(live_server):
    connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=30)
    connection.request("GET", "/")
    response = connection.getresponse()
    page = response.read().decode()
    assert response.status == 200
    assert "default-src 'self'" in response.getheader("content-security-policy")
    assert 'id="image"' in page and 'id="relevance"' in page and 'id="composite"' in page
    assert "http://" not in page and "https://" not in page  # no CDN, no fonts, no trackers
    for asset in ("/static/viewer.js", "/static/viewer.css"):
        connection.request("GET", asset)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200 and "http://" not in body and "https://" not in body
    connection.close()


@pytest.mark.parametrize("path", [
    "/api/images/nope", "/api/images/..%2F..%2Fetc%2Fpasswd", "/api/images/f1%2F..%2Ff2",
    "/api/images/nope/picture.png", "/api/images/f1/secret.png", "/api/results/r999.npz",
])
def test_images_are_addressed_by_id_only(live_server, path):
    assert call(live_server, "GET", path)[0] == 404


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(live_server):
    connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=30)
    connection.putrequest("POST", "/api/images")
    connection.putheader("X-Filename", "huge.png")
    connection.putheader("Content-Length", str(MAX_UPLOAD_BYTES + 1))
    connection.endheaders()  # no body sent: the declared length alone is refused
    response = connection.getresponse()
    assert response.status == 413
    assert "limited to 20 MB" in json.loads(response.read())["error"]
    connection.close()


def test_an_undeclared_upload_is_cut_off_at_the_size_limit(live_server):
    chunks = iter([b"\0" * 2**20] * 21)  # 21 MB, sent chunked: no Content-Length to trust
    connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=60)
    connection.request("POST", "/api/images", body=chunks, headers={"X-Filename": "big.png"},
                       encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413
    assert "limited to 20 MB" in json.loads(response.read())["error"]
    connection.close()


@pytest.mark.parametrize("data, reason", [
    (b"not an image at all", "not a JPEG or PNG"),
    (encoded(RGB, "PNG")[:100], "cannot decode"),
    (png_claiming(50_000, 50_000), "decompression bomb"),
])
def test_refused_uploads_answer_with_their_reason_and_change_nothing(live_server, data, reason):
    before = call(live_server, "GET", "/api/images")[1]
    status, body = upload(live_server, data, "bad.png")
    assert status == 200 and reason in body["error"]
    assert call(live_server, "GET", "/api/images")[1] == before


def test_uploads_need_the_pages_header(live_server):
    status, body = call(live_server, "POST", "/api/images", encoded(RGB, "PNG"))
    assert status == 400 and "viewer page" in body["error"]


def test_an_accepted_upload_joins_the_gallery_and_can_be_explained(live_server):
    status, image = upload(live_server, encoded(RGB, "JPEG"), "my frame.jpg")
    assert status == 200 and image["name"] == "my frame.jpg" and image["id"].startswith("u")
    ids = [i["id"] for i in call(live_server, "GET", "/api/images")[1]["images"]]
    assert image["id"] in ids
    status, answer = ask(live_server, image["id"], {"kind": "box", "y0": 5, "x0": 5, "y1": 9,
                                                     "x1": 30})
    assert status == 200 and answer["target_pixels"] == 4 * 25
    assert answer["input"].startswith("data:image/png;base64,")
    assert [layer["name"] for layer in answer["layers"]][::8] == ["down1", "up1"]


def ask(server, image_id: str, target: dict, seq: int = 1, client: str = "test",
        composite: str = "epsilon-gamma-box") -> tuple[int, dict]:
    body = json.dumps({"image": image_id, "composite": composite, "target": target,
                       "client": client, "seq": seq}).encode()
    return call(server, "POST", "/api/relevance", body, {"Content-Type": "application/json"})


@pytest.mark.parametrize("target, message", [
    ({"kind": "pixel", "y": 256, "x": 0}, "outside the 256x256"),
    ({"kind": "pixel", "y": "3", "x": 0}, "integer"),
    ({"kind": "box", "y0": 5, "x0": 5, "y1": 5, "x1": 9}, "y0 < y1"),
    ({"kind": "file", "path": "/etc/passwd"}, "unknown target kind"),
])
def test_bad_targets_get_a_one_line_error(live_server, target, message):
    status, body = ask(live_server, "f1", target)
    assert status == 400 and message in body["error"]


def test_an_unknown_composite_or_image_is_refused(live_server):
    assert ask(live_server, "f1", {"kind": "mask"}, composite="nope")[0] == 400
    assert ask(live_server, "../f1", {"kind": "mask"})[0] == 404


def test_twenty_rapid_clicks_supersede_each_other_and_leave_it_responsive(live_server):
    results: dict[int, tuple[int, dict]] = {}

    def click(seq: int) -> None:
        results[seq] = ask(live_server, "f3", {"kind": "pixel", "y": seq, "x": 2 * seq},
                           seq=seq, client="rapid", composite="alpha1-beta0")

    threads = [threading.Thread(target=click, args=(seq,)) for seq in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == list(range(1, 21))
    assert all(status == 200 for status, _ in results.values())
    last = results[20][1]
    assert "superseded" not in last and last["target_pixels"] == 1
    superseded = [seq for seq, (_, body) in results.items() if body.get("superseded")]
    assert superseded  # they queued behind the first one, and newer ones replaced them
    start = time.monotonic()
    assert call(live_server, "GET", "/api/info")[0] == 200
    assert time.monotonic() - start < 5


def test_a_queued_request_is_dropped_when_a_newer_one_of_its_page_arrives():
    async def scenario():
        worker = Worker()
        gate = threading.Event()
        busy = asyncio.ensure_future(worker.run(gate.wait, 10))
        older = asyncio.ensure_future(worker.run_latest("page", 1, lambda: "older"))
        other = asyncio.ensure_future(worker.run_latest("other page", 1, lambda: "other"))
        newer = asyncio.ensure_future(worker.run_latest("page", 2, lambda: "newer"))
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(busy, older, other, newer, return_exceptions=True)
        worker.close()
        return results

    busy, older, other, newer = asyncio.run(scenario())
    assert busy is True
    assert isinstance(older, Superseded)
    assert (other, newer) == ("other", "newer")
