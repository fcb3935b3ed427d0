"""Train/validation splits: official or seeded, kept as split.json in the run folder."""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import random
from pathlib import Path
from typing import Any

from endoxai.data.layouts import DatasetIndex
from endoxai.errors import UserError
from endoxai.fileio import atomic_write_text, read_json

logger = logging.getLogger(__name__)

SPLIT_FILE = "split.json"  # name inside a run folder
SPLIT_NAMES = ("train", "val")
TEST = "test"  # optional: images set aside from choosing anything (see holdout_split)


def seeded_split(stems: list[str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """Shuffle the sorted ``stems`` with ``random.Random(seed)``; the first round(n * f) are val.

    At least one item lands on each side. The result depends only on the set of stems, the
    fraction and the seed (not on file order or platform). Raises UserError for fewer than 2 stems.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    ordered = sorted(set(stems))
    if len(ordered) < 2:
        raise UserError(f"need at least 2 image/mask pairs to split; found {len(ordered)}")
    random.Random(seed).shuffle(ordered)
    n_val = min(max(1, round(len(ordered) * val_fraction)), len(ordered) - 1)
    return {"train": sorted(ordered[n_val:]), "val": sorted(ordered[:n_val])}


def holdout_split(split: dict[str, list[str]], holdout: int, seed: int) -> dict[str, list[str]]:
    """Hold ``holdout`` training ids (seeded) out as the validation set that chooses the epoch,
    and make the old validation ids the test set: ``{"train", "val", "test"}``.

    Choosing the best epoch by its score on the images whose score is reported inflates that
    score; with a holdout the reported (test) images never influence training or selection.
    """
    train = sorted(split["train"])
    if not 0 < holdout < len(train):
        raise UserError(f"data.holdout must be between 1 and {len(train) - 1} (the training "
                        f"images); got {holdout}")
    random.Random(seed).shuffle(train)
    return {"train": sorted(train[holdout:]), "val": sorted(train[:holdout]),
            TEST: sorted(split["val"])}


def write_split(path: Path, split: dict[str, list[str]], **meta: Any) -> None:
    """Write ``split`` (plus ``meta`` such as source, seed, val_fraction) as JSON, atomically."""
    payload = {**meta, **{k: sorted(v) for k, v in split.items() if k in (*SPLIT_NAMES, TEST)}}
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")


def read_id_file(path: str | Path) -> list[str]:
    """The ids of a list file: one per line (``train.txt`` / ``val.txt``), blank lines skipped;
    a line may also name a file (``a.jpg``), whose stem is taken. Raises UserError if it cannot be
    read or holds no id."""
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read id list {path}: {getattr(err, 'strerror', None) or err}") from err
    ids = [Path(line.strip()).stem for line in lines if line.strip()]
    if not ids:
        raise UserError(f"{path}: no ids in it (one id per line)")
    return ids


def select_ids(by_stem: dict[str, Any], ids: list[str], where: str) -> dict[str, Any]:
    """``by_stem`` restricted to ``ids``; UserError naming the ids that ``where`` does not hold."""
    missing = sorted(set(ids) - by_stem.keys())
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"{len(missing)} listed id(s) not found in {where}: {shown}")
    return {stem: by_stem[stem] for stem in sorted(set(ids))}


def read_split(path: Path) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...]}`` (and ``"test"`` when the file has it) from a file
    written by write_split.

    Raises UserError for a missing file, bad JSON, missing keys or an id on two sides.
    """
    path = Path(path)
    raw = read_json(path, "split file")
    def is_id_list(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(s, str) for s in value)

    if not isinstance(raw, dict) or not all(is_id_list(raw.get(k)) for k in SPLIT_NAMES):
        raise UserError(f"{path}: a split file needs 'train' and 'val' lists of ids")
    split = {k: sorted(raw[k]) for k in SPLIT_NAMES}
    if TEST in raw:
        if not is_id_list(raw[TEST]):
            raise UserError(f"{path}: 'test' must be a list of ids")
        split[TEST] = sorted(raw[TEST])
    names = list(split)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = set(split[a]) & set(split[b])
            if both:
                raise UserError(f"{path}: {len(both)} id(s) are in both {a} and {b}, "
                                f"e.g. {min(both)}")
    return split


def resolve_split(
    index: DatasetIndex,
    val_fraction: float,
    seed: int,
    run_dir: Path | None = None,
    split_file: Path | None = None,
    holdout: int = 0,
) -> dict[str, list[str]]:
    """The split to train on, ``{"train": [...], "val": [...]}`` (sorted ids), in this order:
    ``split_file`` if given (a split.json from another run), else ``run_dir/split.json`` if it
    exists (resume), else the dataset's official split, else
    seeded_split(index.stems, val_fraction, seed). With ``holdout`` > 0 a drawn split (official
    or seeded) is then passed through holdout_split: validation is on held-out training images
    and the dataset's validation images become ``"test"``.

    The split is written to ``run_dir/split.json`` (when ``run_dir`` is given and the file is not
    there yet) so that a resumed run, evaluation and the report use exactly the same ids; it
    records the dataset's absolute path (``dataset_location``) and its ``dataset_checksum``,
    which a reused split is checked against (a warning when they differ). A split
    read from a file must only name pairs of this dataset, and ``split_file`` must agree with an
    existing ``run_dir/split.json`` (UserError otherwise).
    """
    path = Path(run_dir) / SPLIT_FILE if run_dir is not None else None
    saved = _checked(index, path) if path is not None and path.exists() else None
    if split_file is not None:
        split = _checked(index, Path(split_file))
        if saved is not None and saved != split:
            raise UserError(f"{path} already holds a different split than {split_file}")
        meta: dict[str, Any] = {"source": "file", "file": str(split_file)}
    elif saved is not None:
        logger.info("reusing split %s: %d train / %d val", path, len(saved["train"]),
                    len(saved["val"]))
        warn_if_changed(index, path)
        return saved
    elif index.official_split is not None:
        split = {k: list(index.official_split[k]) for k in SPLIT_NAMES}
        meta = {"source": "official", "files": [index.tree.display(n) for n in index.split_files]}
    else:
        split = seeded_split(index.stems, val_fraction, seed)
        meta = {"source": "seeded", "seed": seed, "val_fraction": val_fraction}
    if holdout and split_file is None:
        split = holdout_split(split, holdout, seed)
        meta["holdout"] = holdout
    meta["dataset"] = dataset_location(index)  # absolute: report etc. run from any folder
    meta["checksum"] = dataset_checksum(index)
    meta["layout"] = index.layout
    if path is not None and saved is None:
        write_split(path, split, **meta)
    logger.info("%s split: %d train / %d val%s", meta["source"], len(split["train"]),
                len(split["val"]), f" / {len(split[TEST])} test" if TEST in split else "")
    return split


def dataset_location(index: DatasetIndex) -> str:
    """The dataset's root as an absolute path (``archive.zip:Top/`` for a folder inside an
    archive), so that a run folder finds its data from any working folder."""
    source = Path(index.source).expanduser().resolve()
    if index.tree.kind == "folder":
        return str(source / index.root) if index.root else str(source)
    return f"{source}:{index.root}" if index.root else str(source)


def dataset_checksum(index: DatasetIndex) -> str:
    """``sha256:<hex>`` of the sorted image/mask pairs: each id with its image's and mask's name
    (relative to the dataset root) and size in bytes. Cheap (no file is read) and unchanged when
    the dataset is moved or copied, but a file added, removed, renamed or rewritten at another
    size changes it."""
    digest = hashlib.sha256()
    for stem in index.stems:
        for name in (index.images[stem], index.masks[stem]):
            relative = posixpath.relpath(name, index.root) if index.root else name
            line = f"{stem}\t{relative}\t{_size(index, name)}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
    return f"sha256:{digest.hexdigest()}"


def _size(index: DatasetIndex, name: str) -> int:
    source = index.tree.read(name)  # a path for folders, the bytes of an archive member
    if isinstance(source, Path):
        try:
            return source.stat().st_size
        except OSError:
            return -1
    return len(source)


def warn_if_changed(index: DatasetIndex, split_file: str | Path) -> None:
    """Log a warning when ``split_file`` records a checksum (``dataset_checksum``) that differs
    from ``index``'s: the run is being continued or scored on data other than it trained on."""
    try:
        recorded = json.loads(Path(split_file).read_text(encoding="utf-8")).get("checksum")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(recorded, str) and recorded != dataset_checksum(index):
        logger.warning("%s is not the dataset that %s records: its files differ in name or "
                       "size (checksum %s, recorded %s)", index.where, split_file,
                       dataset_checksum(index)[:19], recorded[:19])


def _checked(index: DatasetIndex, path: Path) -> dict[str, list[str]]:
    split = read_split(path)
    unknown = sorted(set().union(*split.values()) - set(index.stems))
    if unknown:
        raise UserError(
            f"{path} names {len(unknown)} id(s) that are not pairs of {index.where} "
            f"(e.g. {unknown[0]}); was it made for another dataset?"
        )
    return split
