"""Every command over a folder that mixes hostile files with good ones (corpus in conftest.py).

Rules checked for each: no traceback, one line per failed file naming it, the other files still
processed, the documented exit code, inputs never overwritten, atomic outputs. The outcome of each
kind under each command is collected; with ENDOXAI_HOSTILE_REPORT=path.md the module writes them
as a Markdown table (docs/guides/reliability.md summarises it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from endoxai.cli import main
from endoxai.config import Config
from endoxai.models import Generator
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save

pytestmark = pytest.mark.slow  # predict and explain run the Table-1 generator (~1 min in all)

COMMANDS = ("data check", "predict", "explain", "evaluate", "train")
OUTCOMES: dict[str, dict[str, str]] = defaultdict(dict)  # kind -> command -> outcome
ORDER: list[str] = []  # kinds in corpus order, then folder- and checkpoint-level rows
EXPLAINED = ("1x1 image", "name that is not UTF-8 (Latin-1 bytes)")
SPECIAL_MARKERS = {  # problems reported without the file's path
    "two images with one stem (dup.jpg + dup.png)": "id dup (dup.jpg + dup.png)",
    "split list names a missing id": "names ghost",
}


def _record(kind: str, command: str, outcome: str) -> None:
    if kind not in ORDER:
        ORDER.append(kind)
    OUTCOMES[kind][command] = outcome


def _shown(name: str) -> str:
    """How the CLI prints a name: newlines escaped, undecodable bytes as \\udcxx."""
    return name.replace("\n", "\\n").encode("utf-8", "backslashreplace").decode("utf-8")


def _digests(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file():
            try:
                out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
            except PermissionError:  # the chmod-000 file, for a process that honours it
                out[p.name] = "unreadable"
    return out


def _one_line_errors(err: str) -> None:
    assert "Traceback" not in err
    for line in err.strip().splitlines():
        assert not line.startswith((" ", "\t")), f"continuation line: {line!r}"


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    path = os.environ.get("ENDOXAI_HOSTILE_REPORT")
    if path:
        Path(path).write_text(_markdown())


def _markdown() -> str:
    lines = ["| kind of input | " + " | ".join(COMMANDS) + " |",
             "| --- |" + " --- |" * len(COMMANDS)]
    for kind in ORDER:
        cells = [OUTCOMES[kind].get(c, "·") for c in COMMANDS]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- data check and train


def _lines_for(entry, lines: list[str]) -> list[str]:
    marker = SPECIAL_MARKERS.get(entry.kind)
    keys = [marker] if marker else []
    keys += [f"/images/{_shown(entry.image)}" for _ in [0] if entry.image]
    keys += [f"/masks/{_shown(entry.mask)}" for _ in [0] if entry.mask]
    found = []
    for line in lines:
        if " duplicate-image " in line and "copy.jpg" not in (entry.image or ""):
            continue  # that line names good0.jpg too; it belongs to the copy
        if any(k + sep in line for k in keys for sep in (":", ",", " ", ";")) or \
                any(k in line for k in keys if k == marker):
            found.append(line)
    return found


def test_data_check_lists_every_problem_once(corpus, capsys):
    code = main(["data", "check", str(corpus.data)])
    out, err = capsys.readouterr()
    _one_line_errors(err)
    lines = out.strip().splitlines()
    problems, summary = lines[:-1], lines[-1]
    assert code == 1 and "training refuses this dataset" in summary
    expected_total = 0
    for entry in corpus.entries:
        found = _lines_for(entry, problems)
        kinds = sorted(line.split()[1] for line in found)
        assert kinds == sorted(entry.check), entry.kind
        expected_total += len(entry.check)
        severity = {line.split()[1]: line.split()[0] for line in found}
        _record(entry.kind, "data check", ", ".join(f"{severity[k]}: {k}" for k in entry.check)
                or "no problem")
    assert len(problems) == expected_total


def test_train_refuses_the_corpus_before_any_work(corpus, tmp_path, capsys):
    n_fatal = sum(1 for e in corpus.entries for k in e.check
                  if k in ("unreadable", "size-mismatch", "duplicate-name", "not-a-mask"))
    run = tmp_path / "run"
    code = main(["train", "--data", str(corpus.data), "--out", str(run), "--no-progress"])
    err = capsys.readouterr().err
    _one_line_errors(err)
    assert code == 2 and f"the data check found {n_fatal} error(s)" in err
    assert "endoxai data check" in err and not run.exists()
    for entry in corpus.entries:
        fatal = any(k in ("unreadable", "size-mismatch", "duplicate-name", "not-a-mask")
                    for k in entry.check)
        _record(entry.kind, "train", "refused before any work (exit 2)" if fatal
                else "trains; warning logged" if entry.check else "trains")


def test_train_goes_on_over_warnings_only(warnings_only, tmp_path, capsys, tiny_models):
    run = tmp_path / "run"
    code = main(["train", "--data", str(warnings_only.data), "--out", str(run), "--epochs", "1",
                 "--batch-size", "4", "--precision", "fp32", "--no-progress"])
    err = capsys.readouterr().err
    _one_line_errors(err)
    assert code == 0 and (run / "last.pt").is_file()
    warned = {k for e in warnings_only.entries for k in e.check}
    for kind in warned:
        assert f"data check: {kind}:" in err, kind
    split = json.loads((run / "split.json").read_text())
    unlisted = {Path(e.image).stem for e in warnings_only.entries if "split-unlisted" in e.check}
    assert not unlisted & set(split["train"] + split["val"])


# ---------------------------------------------------------------- predict


def test_predict_writes_every_readable_image_and_names_every_failure(corpus, checkpoint,
                                                                    tmp_path, capsys):
    images = corpus.data / "images"
    before = _digests(images)
    out = tmp_path / "pred"
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(images),
                 "--output", str(out), "--no-progress"])
    captured = capsys.readouterr()
    _one_line_errors(captured.err)
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code == 1
    n_failed = 0
    for entry in corpus.entries:
        if entry.image is None:
            continue
        stem = Path(entry.image).stem
        target = out / f"{entry.image.replace('.', '_') if stem == 'dup' else stem}.png"
        mine = [line for line in errors if f"/images/{_shown(entry.image)}:" in line]
        if entry.ignored:
            assert not target.exists() and not mine, entry.kind
            _record(entry.kind, "predict", "skipped (not an image file)" if not
                    entry.image.startswith(".") else "skipped (hidden)")
        elif entry.size is None:
            n_failed += 1
            assert len(mine) == 1 and entry.error in mine[0], entry.kind
            assert not target.exists()
            _record(entry.kind, "predict", f"one-line error, others go on: “{entry.error}”")
        else:
            mask = np.asarray(Image.open(target))
            assert mask.shape == entry.size and set(np.unique(mask)) <= {0, 255}, entry.kind
            assert not mine
            _record(entry.kind, "predict", f"mask {entry.size[1]}x{entry.size[0]} written")
    assert len(errors) == n_failed
    assert f"; {n_failed} file(s) failed" in captured.out
    assert (out / "dup_jpg.png").is_file() and (out / "dup_png.png").is_file()
    assert _digests(images) == before


def test_predict_into_the_input_folder_is_refused(corpus, checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("good0.jpg", "grey.png", "dup.jpg", "dup.png", "zero.jpg"):
        shutil.copy(corpus.data / "images" / name, folder / name)
    before = _digests(folder)
    for output, where in ((folder, "output folder = input folder"),
                          (folder / "masks", "output folder inside the input folder")):
        code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(folder),
                     "--output", str(output), "--no-progress"])
        err = capsys.readouterr().err
        _one_line_errors(err)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "a rerun would read the files written there as new inputs" in err
        assert _digests(folder) == before and not (folder / "masks").exists()
        _record(where, "predict", "refused (a rerun would take the masks for images), exit 2")

    # One image given as a file may share its folder with the masks; its own name is guarded.
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(folder / "grey.png"),
                 "--output", str(folder), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "grey.png: output" in err and "would overwrite an input; skipped" in err
    assert _digests(folder) == before
    _record("output names the input image", "predict",
            "input untouched; reported as “would overwrite an input”, exit 1")


@pytest.mark.parametrize("where", ["empty folder", "missing folder", "a text file"])
@pytest.mark.parametrize("command", ["data check", "predict", "explain", "evaluate", "train"])
def test_nothing_to_read_is_one_line_and_exit_2(checkpoint, tmp_path, capsys, where, command):
    target = tmp_path / "target"
    if where == "empty folder":
        target.mkdir()
    elif where == "a text file":
        target = tmp_path / "notes.txt"
        target.write_text("hello")
    out = tmp_path / "out"
    argv = {
        "data check": ["data", "check", str(target)],
        "predict": ["predict", "--checkpoint", str(checkpoint), "--input", str(target),
                    "--output", str(out), "--no-progress"],
        "explain": ["explain", "--checkpoint", str(checkpoint), "--input", str(target),
                    "--output", str(out)],
        "evaluate": ["evaluate", "--pred", str(target), "--truth", str(target)],
        "train": ["train", "--data", str(target), "--out", str(out), "--no-progress"],
    }[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
    _record(where, command, "one-line error, exit 2")


# ---------------------------------------------------------------- explain


def test_explain_goes_on_and_refuses_the_input_folder(corpus, checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    chosen = [e for e in corpus.entries
              if e.image and not e.ignored and (e.size is None or e.kind in EXPLAINED)]
    for entry in chosen:
        os.link(corpus.data / "images" / entry.image, folder / entry.image)
    shutil.copy(corpus.data / "images" / "good0.jpg", folder / "good0.jpg")
    shutil.copy(corpus.data / "images" / "grey.png", folder / "good0_layers.png")  # a trap
    before = _digests(folder)
    code = main(["explain", "--checkpoint", str(checkpoint), "--input", str(folder),
                 "--output", str(folder)])  # would overwrite the trap, and snowball on a rerun
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is the input folder" in err
    assert _digests(folder) == before
    _record("output folder = input folder", "explain",
            "refused (a rerun would explain the figures as images), exit 2")

    out = tmp_path / "out"
    code = main(["explain", "--checkpoint", str(checkpoint), "--input", str(folder),
                 "--output", str(out)])
    captured = capsys.readouterr()
    _one_line_errors(captured.err)
    assert code == 1
    for entry in chosen:
        stem = Path(entry.image).stem
        mine = [line for line in captured.err.splitlines() if f"/{_shown(entry.image)}:" in line]
        if entry.size is None:
            assert len(mine) == 1 and entry.error in mine[0], entry.kind
            _record(entry.kind, "explain", f"one-line error, others go on: “{entry.error}”")
        else:
            arrays = np.load(out / f"{stem}.npz")
            assert arrays["input"].shape == (3, 256, 256) and not mine
            assert (out / f"{stem}_explanation.png").is_file()
            _record(entry.kind, "explain", "figures + arrays written")
    assert (out / "good0_layers_explanation.png").is_file()
    assert _digests(folder) == before


# ---------------------------------------------------------------- evaluate


def _disc(h: int, w: int) -> bytes:
    m = np.zeros((h, w), np.uint8)
    m[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
    return _png(m)


def _png(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _evaluate_entries(corpus):
    """Entries whose hostile file can be a prediction: a regular .png/.jpg/.jpeg file."""
    out = []
    for entry in corpus.entries:
        name = entry.image if entry.subject == "image" else entry.mask
        if (name and not entry.ignored and "duplicate-name" not in entry.check
                and Path(name).suffix.lower() in (".png", ".jpg", ".jpeg")):
            out.append((entry, name))
    return out


def test_evaluate_lists_every_unscorable_prediction(corpus, tmp_path, capsys):
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    bad = []
    for entry, name in _evaluate_entries(corpus):
        folder = "images" if entry.subject == "image" else "masks"
        os.link(corpus.data / folder / name, pred / name)
        stem = Path(name).stem
        (truth / f"{stem}.png").write_bytes(_disc(*(entry.size or (48, 64)))
                                            if entry.subject == "image" else _disc(48, 64))
        unscorable = entry.size is None if entry.subject == "image" else \
            "size-mismatch" in entry.check
        if unscorable:
            bad.append((entry, name))
    # Most predictions here are photographs: refused as not masks unless --force, with which
    # every hostile file is read and scored as a mask.
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth)]) == 2
    assert "are not binary masks" in capsys.readouterr().err
    code = main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--force",
                 "--output", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    _one_line_errors(err)
    assert code == 2 and not (tmp_path / "m.json").exists()
    assert f"{len(bad)} of {len(_evaluate_entries(corpus))} mask pairs cannot be scored" in err
    for entry, name in bad:
        assert _shown(name) in err, entry.kind
        _record(entry.kind, "evaluate", "listed with all others; nothing written, exit 2")

    for entry, name in bad:
        (pred / name).unlink()
        (truth / f"{Path(name).stem}.png").unlink()
    code = main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--force",
                 "--output", str(tmp_path / "m.json")])
    capsys.readouterr()
    assert code == 0
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["medai"]["n_images"] == len(_evaluate_entries(corpus)) - len(bad)
    for entry, name in _evaluate_entries(corpus):
        if (entry, name) not in bad:
            _record(entry.kind, "evaluate", "scored")


def test_evaluate_refuses_ambiguous_or_missing_pairs(corpus, tmp_path, capsys):
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    for name in ("good0.jpg", "dup.jpg", "dup.png"):
        shutil.copy(corpus.data / "images" / name, pred / name)
    for stem in ("good0", "dup"):
        (truth / f"{stem}.png").write_bytes(_disc(48, 64))
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth)]) == 2
    err = capsys.readouterr().err
    assert "more than one mask with the same name: dup (dup.jpg + dup.png)" in err
    _record("two images with one stem (dup.jpg + dup.png)", "evaluate",
            "refused: “more than one mask with the same name”, exit 2")

    (pred / "dup.png").unlink()
    for name in ("bitmap.bmp", "float.tif"):
        shutil.copy(corpus.data / "images" / name, pred / name)
        (truth / f"{Path(name).stem}.png").write_bytes(_disc(48, 64))
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth)]) == 2
    err = capsys.readouterr().err
    assert "2 truth mask(s)" in err and "have no prediction: bitmap, float" in err
    for kind in ("BMP", "32-bit float TIFF"):
        _record(kind, "evaluate", "not read (masks are .png/.jpg): reported as missing, exit 2")

    shutil.copy(corpus.data / "masks" / "good0.png", tmp_path / "truth_copy.png")
    code = main(["evaluate", "--pred", str(truth), "--truth", str(truth),
                 "--output", str(truth / "good0.png")])
    assert code == 2 and "is one of the input masks" in capsys.readouterr().err
    _record("--output names an input mask", "evaluate", "refused, exit 2")


# ---------------------------------------------------------------- checkpoints


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _checkpoints(root: Path) -> dict[str, tuple[Path, str]]:
    """kind -> (file, words of the expected one-line error)."""
    good = {"format": FORMAT, "version": VERSION, "config": Config().to_dict()}
    out = {}

    def save(name, obj, words, **kwargs):
        path = root / name
        torch.save(obj, path, **kwargs)
        out[name] = (path, words)

    save("pickle that runs a command on load", {**good, "x": _RunsCode(root / "PWNED")},
         "refused to load")
    save("legacy-format pickle that runs a command", {"x": _RunsCode(root / "PWNED")},
         "refused to load", _use_new_zipfile_serialization=False)
    save("whole pickled nn.Module", torch.nn.Linear(2, 2), "refused to load")
    save("checkpoint from a newer endoxai", {**good, "version": VERSION + 1, "generator": {}},
         "newer than supported")
    save("checkpoint of another program", {"state_dict": {}}, "not an endoxai checkpoint")
    bad_config = {**good, "config": {**Config().to_dict(), "data": {"image_size": 100}},
                  "generator": {}}
    save("checkpoint with an invalid config", bad_config, "invalid config stored")
    g2 = Generator(out_channels=2)
    save("weights that do not fit the stored config", {**good, "generator": g2.state_dict()},
         "do not match")
    full = root / "full.pt"
    atomic_save({**good, "generator": Generator().state_dict()}, full)
    data = full.read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 3])
    out["truncated checkpoint"] = (root / "truncated.pt", "not a readable checkpoint")
    (root / "empty.pt").write_bytes(b"")
    out["empty checkpoint file"] = (root / "empty.pt", "not a readable checkpoint")
    (root / "folder.pt").mkdir()
    out["checkpoint path is a folder"] = (root / "folder.pt", "not a checkpoint file")
    return out


def test_every_bad_checkpoint_is_one_line_and_runs_nothing(corpus, tmp_path, capsys):
    image = corpus.data / "images" / "good0.jpg"
    for kind, (path, words) in _checkpoints(tmp_path).items():
        code = main(["predict", "--checkpoint", str(path), "--input", str(image),
                     "--output", str(tmp_path / "out"), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, kind
        _record(kind, "predict", f"one-line error, exit 2: “{words}”")
    assert not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------- kills


def test_kill_during_predict_leaves_only_complete_masks(corpus, checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(12):
        shutil.copy(corpus.data / "images" / "good0.jpg", folder / f"img{i:02d}.jpg")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "endoxai", "predict", "--checkpoint", str(checkpoint),
            "--input", str(folder), "--output", str(out), "--batch-size", "1", "--no-progress"]
    for signum, code in ((signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143)):
        shutil.rmtree(out, ignore_errors=True)
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(out.glob("*.png"))):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.01)
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
        assert child.returncode == code, err
        written = sorted(out.glob("*.png"))
        assert 1 <= len(written) < 12
        for path in written:  # every visible mask is complete
            assert np.asarray(Image.open(path)).shape == (48, 64)
        if signum == signal.SIGTERM:
            assert not list(out.glob(".*.tmp")) and "Traceback" not in err
    _record("kill -9 during predict", "predict", "only complete masks; temp file at most")
    _record("SIGTERM during predict", "predict", "only complete masks, no temp file, exit 143")
