"""The viewer's image store: ids only, uploads refused with a one-line reason when they are too
large, claim too many pixels, are no JPEG / PNG, or do not decode."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from endoxai.view.store import MAX_UPLOAD_BYTES, ImageStore, UploadRefused

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: view_fixtures
from view_fixtures import RGB, encoded, png_claiming  # noqa: E402


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_jpeg_or_png_upload_is_kept_at_model_size_under_an_id(fmt):
    store = ImageStore(256)
    image = store.add_upload(encoded(RGB, fmt), f"frame.{fmt.lower()}")
    assert image.id == "u1" and (image.height, image.width) == (60, 80)
    assert image.pixels.shape == (256, 256, 3)
    assert store.get("u1") is image
    summary = image.summary()
    assert summary["name"] == f"frame.{fmt.lower()}" and summary["uploaded"]
    assert "path" not in summary


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"hello, this is text", "not a JPEG or PNG image, or the file is corrupt"),
    (encoded(RGB, "PNG")[:120], "cannot decode image"),
    (encoded(RGB, "GIF"), "GIF files are not accepted"),
    (png_claiming(50_000, 50_000), "too many pixels"),
    # 48 M pixels: below PIL's own bomb limits, above the viewer's
    (png_claiming(8_000, 6_000), "8000x6000 pixels is more than the 40,000,000 accepted"),
    (b"\0" * (MAX_UPLOAD_BYTES + 1), "limited to 20 MB"),
])
def test_bad_uploads_are_refused_with_one_line(data, reason):
    store = ImageStore(256)
    with pytest.raises(UploadRefused) as err:
        store.add_upload(data, "some.png")
    assert reason in str(err.value)
    assert "\n" not in str(err.value)
    assert store.listing() == []


def test_a_bomb_is_refused_before_decoding(monkeypatch):
    decoded = []
    monkeypatch.setattr("endoxai.view.store.read_image", lambda *a: decoded.append(a))
    with pytest.raises(UploadRefused):
        ImageStore(256).add_upload(png_claiming(8_000, 6_000), "bomb.png")
    assert decoded == []


@pytest.mark.parametrize("given, shown", [
    ("../../etc/passwd.png", "passwd.png"),
    ("C:\\Users\\me\\polyp.jpg", "polyp.jpg"),
    ("a\nb\x00c.png", "a?b?c.png"),
    ("   ", "upload"),
])
def test_upload_names_are_reduced_to_a_printable_base_name(given, shown):
    assert ImageStore(256).add_upload(encoded(RGB, "PNG"), given).name == shown


def test_files_pair_with_masks_by_stem_and_list_worst_dice_first(view_files):
    store = ImageStore(256)
    added = store.add_files([view_files.images], view_files.masks)
    assert [i.id for i in added] == ["f1", "f2", "f3"]
    assert all(i.truth_path is not None and i.truth_path.stem == i.path.stem for i in added)
    for image, dice in zip(added, [0.5, 0.2, None]):
        image.dice = dice
    assert [i.id for i in store.listing()] == ["f2", "f1", "f3"]
    pixels = store.pixels(added[0])
    assert pixels.image.shape == (256, 256, 3) and pixels.truth.shape == (256, 256)
    with pytest.raises(KeyError):
        store.get("../" + str(view_files.images / "case0.png"))
