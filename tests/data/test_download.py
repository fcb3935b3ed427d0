"""download against a local HTTP server: success, checksum mismatch, corrupt archive, no host."""

import functools
import hashlib
import http.server
import socket
import threading

import pytest

from endoxai.data import DATASETS, download, find_dataset
from endoxai.errors import UserError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, folder it serves) of an HTTP server on 127.0.0.1 running in a thread."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_verifies_and_renames(server, tmp_path, synth):
    url, root = server
    data = synth.zip_bytes(synth.instrument_members(3))
    (root / "kvasir-instrument.zip").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "dest"
    path, digest = download("kvasir-instrument", dest, url=f"{url}/kvasir-instrument.zip",
                            progress=False)
    assert path == dest / "kvasir-instrument.zip" and path.read_bytes() == data
    assert digest == expected
    assert sorted(p.name for p in dest.iterdir()) == ["kvasir-instrument.zip"]  # no .part left
    assert find_dataset(path).layout == "kvasir-instrument"
    # With the right checksum given, and again when the file is already there (not re-fetched).
    (root / "kvasir-instrument.zip").unlink()
    assert download("kvasir-instrument", dest, url=f"{url}/kvasir-instrument.zip",
                    sha256=expected.upper(), progress=False) == (path, expected)


def test_checksum_mismatch_deletes_the_download(server, tmp_path, synth):
    url, root = server
    (root / "kvasir-instrument.zip").write_bytes(synth.zip_bytes(synth.instrument_members(2)))
    dest = tmp_path / "dest"
    with pytest.raises(UserError, match="checksum mismatch"):
        download("kvasir-instrument", dest, url=f"{url}/kvasir-instrument.zip", sha256="0" * 64,
                 progress=False)
    assert list(dest.iterdir()) == []


def test_published_checksum_applies_to_a_mirror(server, tmp_path, synth):
    url, root = server
    assert DATASETS["kvasir-seg"].sha256 is not None
    (root / "kvasir-seg.zip").write_bytes(synth.zip_bytes(synth.pair_files(2, "kvasir-seg")))
    with pytest.raises(UserError, match="expected " + DATASETS["kvasir-seg"].sha256):
        download("kvasir-seg", tmp_path / "dest", url=f"{url}/kvasir-seg.zip", progress=False)
    assert list((tmp_path / "dest").iterdir()) == []


def test_corrupt_or_non_archive_download_is_rejected(server, tmp_path, synth):
    url, root = server
    data = synth.zip_bytes(synth.instrument_members(2))
    broken = bytearray(data)
    broken[len(broken) // 3] ^= 0xFF  # flip bits inside a member: the CRC check must fail
    (root / "broken.zip").write_bytes(bytes(broken))
    (root / "page.zip").write_bytes(b"<html>Service unavailable</html>")
    with pytest.raises(UserError, match="corrupt"):
        download("kvasir-instrument", tmp_path / "a", url=f"{url}/broken.zip", progress=False)
    with pytest.raises(UserError, match="not a zip or tar"):
        download("kvasir-instrument", tmp_path / "b", url=f"{url}/page.zip", progress=False)
    assert list((tmp_path / "a").iterdir()) == [] and list((tmp_path / "b").iterdir()) == []


def test_http_error_and_unreachable_host_are_one_line_user_errors(server, tmp_path):
    url, _ = server
    dest = tmp_path / "dest"
    with pytest.raises(UserError, match="HTTP 404"):
        download("kvasir-seg", dest, url=f"{url}/missing.zip", progress=False)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    archive_url = f"http://127.0.0.1:{port}/kvasir-seg.zip"
    with pytest.raises(UserError, match="could not reach 127.0.0.1") as err:
        download("kvasir-seg", dest, url=archive_url, progress=False, timeout=5)
    message = str(err.value)
    assert "\n" not in message
    assert f"download {archive_url} with a browser" in message  # how to get it by hand
    assert list(dest.iterdir()) == []


def test_bad_sha256_argument_and_unknown_dataset(tmp_path):
    with pytest.raises(UserError, match="64 hexadecimal"):
        download("kvasir-seg", tmp_path, sha256="abc")
    with pytest.raises(KeyError, match="kvasir-seg"):
        download("nope", tmp_path)
