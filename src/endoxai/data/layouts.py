"""Finding image/mask pairs in a folder or archive: Kvasir-SEG, Kvasir-Instrument, folder pairs.

Detection, in order:

1. The dataset root is the folder (at most MAX_DIR_DEPTH levels below the given path, or inside
   the archive, e.g. ``Kvasir-SEG/`` in ``kvasir-seg.zip``) that holds an image folder
   (``images``, ``image``, ``img``, ``imgs``) and a mask folder (``masks``, ``mask``, ``labels``,
   ``label``). Images and masks pair by file stem (``a.jpg`` <-> ``a.png``).
2. Layout name:
   - ``kvasir-instrument``: ``images/`` + ``masks/`` with PNG masks and ``train.txt`` + ``test.txt``
     (the official Kvasir-Instrument release; its test list is our validation split);
   - ``kvasir-seg``: ``images/`` + ``masks/`` with JPEG masks (``train.txt`` / ``val.txt`` optional:
     the MediaEval 2020 Medico split);
   - ``folder-pair``: any other image/mask folder pair.
3. Official split: ``train.txt`` plus ``val.txt`` (or, without it, ``test.txt``) next to the
   folders, one id per line without extension (an image extension is tolerated). Any layout may
   have one; without it the training code makes a seeded split (see splits.py).
"""

from __future__ import annotations

import logging
import posixpath
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from endoxai.data.archive import IMAGE_DIRS, MASK_DIRS, FileTree, open_tree
from endoxai.data.io import IMAGE_SUFFIXES, Source
from endoxai.errors import UserError

logger = logging.getLogger(__name__)

LAYOUTS = ("kvasir-seg", "kvasir-instrument", "folder-pair")


@dataclass
class DatasetIndex:
    """The image/mask pairs of one dataset. Files are not decoded here (see load_arrays).

    ``stems`` are the sorted ids that have both an image and a mask; ``images[stem]`` and
    ``masks[stem]`` are names inside ``tree``; ``unpaired`` names (for messages) each file that
    has no partner; ``official_split`` is ``{"train": [...], "val": [...]}`` (sorted stems) or None.
    """

    source: Path
    layout: str
    root: str  # dataset folder inside the tree ("" = the given folder / archive top)
    stems: list[str]
    images: dict[str, str]
    masks: dict[str, str]
    unpaired: list[str]
    official_split: dict[str, list[str]] | None
    tree: FileTree = field(repr=False)
    split_files: tuple[str, ...] = ()  # names of the list files the official split came from

    def image_source(self, stem: str) -> tuple[Source, str]:
        """(path or bytes, display name) of the image of ``stem``, ready for io.read_image."""
        name = self.images[stem]
        return self.tree.read(name), self.tree.display(name)

    def mask_source(self, stem: str) -> tuple[Source, str]:
        """(path or bytes, display name) of the mask of ``stem``, ready for io.read_mask."""
        name = self.masks[stem]
        return self.tree.read(name), self.tree.display(name)

    @property
    def where(self) -> str:
        """The dataset root for messages: a folder path or ``archive.zip:Top/``."""
        if not self.root:
            return str(self.source)
        return self.tree.display(self.root)


def _image_files(names: list[str]) -> dict[str, dict[str, list[str]]]:
    """{folder: {stem: [names]}} for image files directly inside each folder."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name in names:
        folder, base = posixpath.split(name)
        stem, suffix = posixpath.splitext(base)
        if suffix.lower() in IMAGE_SUFFIXES:
            out[folder][stem].append(name)
    return out


def _pick(children: dict[str, str], preferred: tuple[str, ...]) -> str | None:
    """The child folder whose lower-cased name comes first in ``preferred``."""
    for want in preferred:
        if want in children:
            return children[want]
    return None


def _roots(files: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, str]]:
    """{root: {lower-cased image/mask folder name: folder}} for folders that hold image files."""
    roots: dict[str, dict[str, str]] = defaultdict(dict)
    for folder in files:
        root, base = posixpath.split(folder)
        if base.lower() in IMAGE_DIRS + MASK_DIRS:
            roots[root].setdefault(base.lower(), folder)
    return roots


def _read_ids(tree: FileTree, name: str) -> list[str]:
    # surrogateescape: ids match file names that are not valid UTF-8 (as os.listdir gives them)
    text = tree.read_bytes(name).decode("utf-8-sig", errors="surrogateescape")
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        stem, suffix = posixpath.splitext(posixpath.basename(line))
        ids.append(stem if suffix.lower() in IMAGE_SUFFIXES else posixpath.basename(line))
    return ids


def _official_split(
    tree: FileTree, root: str, stems: list[str], where: str
) -> tuple[dict[str, list[str]] | None, tuple[str, ...]]:
    lists = {posixpath.basename(n).lower(): n for n in tree.names() if posixpath.dirname(n) == root}
    train = lists.get("train.txt")
    val = lists.get("val.txt") or lists.get("test.txt")
    if train is None or val is None:
        return None, ()
    train_ids, val_ids = _read_ids(tree, train), _read_ids(tree, val)
    both = sorted(set(train_ids) & set(val_ids))
    if both:
        raise UserError(
            f"{where}: {len(both)} id(s) are in both {posixpath.basename(train)} and "
            f"{posixpath.basename(val)} (e.g. {both[0]}); fix the lists or delete them to use a "
            "seeded split"
        )
    known = set(stems)
    split = {"train": sorted(set(train_ids) & known), "val": sorted(set(val_ids) & known)}
    missing = len(set(train_ids) - known) + len(set(val_ids) - known)
    if missing:
        logger.warning("%s: %d id(s) in the split lists have no image/mask pair; ignored", where,
                       missing)
    if not split["train"] or not split["val"]:
        raise UserError(
            f"{where}: {posixpath.basename(train)} / {posixpath.basename(val)} name none of the "
            f"{len(known)} image/mask pairs of one side; fix the lists or delete them to use a "
            "seeded split"
        )
    unlisted = len(known) - len(split["train"]) - len(split["val"])
    if unlisted:
        logger.warning("%s: %d pair(s) are in no split list and will not be used", where, unlisted)
    return split, (train, val)


def _no_pairs_error(path: Path, tree: FileTree, roots: dict[str, dict[str, str]],
                    files: dict[str, dict[str, list[str]]]) -> UserError:
    def count(folder: str) -> int:
        return sum(len(v) for v in files[folder].values())

    for root, children in sorted(roots.items()):
        mask_dir = _pick(children, MASK_DIRS)
        image_dir = _pick(children, IMAGE_DIRS)
        if mask_dir and not image_dir:
            hint = ""
            if any(n.lower().endswith(".png") for n in tree.names() if n.startswith(mask_dir)):
                hint = (" (Kvasir-Instrument ships its images as images.tar.gz inside the official "
                        "archive: give the archive itself, or get it with "
                        "`endoxai data download kvasir-instrument`)")
            return UserError(
                f"{tree.display(mask_dir)} has {count(mask_dir)} mask(s) but there is no image "
                f"folder ({'/'.join(IMAGE_DIRS)}) next to it{hint}"
            )
        if image_dir and not mask_dir:
            return UserError(
                f"{tree.display(image_dir)} has {count(image_dir)} image(s) but there is no mask "
                f"folder ({'/'.join(MASK_DIRS)}) next to it"
            )
    return UserError(
        f"no dataset found in {path}: expected an image folder ({'/'.join(IMAGE_DIRS)}) and a mask "
        f"folder ({'/'.join(MASK_DIRS)}) side by side, with files of the same name, e.g. "
        "DIR/images/a.jpg + DIR/masks/a.png, or the official kvasir-seg.zip / "
        "kvasir-instrument archive"
    )


def find_dataset(path: str | Path) -> DatasetIndex:
    """Detect the layout of a dataset folder or archive and pair its images and masks by stem.

    ``path`` may be the dataset folder, a folder above it (searched a few levels down) or an
    archive (.zip, .tar, .tar.gz; read in memory, never extracted). See the module docstring for
    the rules. Raises UserError for a missing path, no image/mask folders (naming what was found,
    e.g. masks without images), several candidate datasets, or no file with a partner.
    """
    path = Path(path).expanduser()
    tree = open_tree(path)
    files = _image_files(tree.names())
    roots = _roots(files)
    candidates = {
        root: (_pick(ch, IMAGE_DIRS), _pick(ch, MASK_DIRS))
        for root, ch in roots.items()
        if _pick(ch, IMAGE_DIRS) and _pick(ch, MASK_DIRS)
    }
    if not candidates:
        raise _no_pairs_error(path, tree, roots, files)
    if len(candidates) > 1:
        depth = {r: (r.count("/") + 1 if r else 0) for r in candidates}
        shallowest = min(depth.values())
        top = [r for r in candidates if depth[r] == shallowest]
        if len(top) > 1:
            listed = ", ".join(tree.display(r) for r in sorted(top))
            raise UserError(f"{path} holds several datasets ({listed}); give one of them")
        root = top[0]
    else:
        root = next(iter(candidates))
    image_dir, mask_dir = candidates[root]
    where = tree.display(root) if root else str(path)

    images: dict[str, str] = {}
    masks: dict[str, str] = {}
    for folder, target in ((image_dir, images), (mask_dir, masks)):
        for stem, names in files[folder].items():
            names = sorted(names)
            target[stem] = names[0]
            if len(names) > 1:
                logger.warning("%s: several files for id %s (%s); using %s", where, stem,
                               ", ".join(posixpath.basename(n) for n in names),
                               posixpath.basename(names[0]))
    stems = sorted(images.keys() & masks.keys())
    unpaired = sorted(tree.display(images[s]) for s in images.keys() - masks.keys())
    unpaired += sorted(tree.display(masks[s]) for s in masks.keys() - images.keys())
    if not stems:
        example_i = posixpath.basename(next(iter(images.values())))
        example_m = posixpath.basename(next(iter(masks.values())))
        raise UserError(
            f"{where}: no image has a mask with the same name ({len(images)} images, e.g. "
            f"{example_i}; {len(masks)} masks, e.g. {example_m})"
        )
    if unpaired:
        logger.warning("%s: %d file(s) have no partner and are ignored, e.g. %s", where,
                       len(unpaired), unpaired[0])

    official, split_files = _official_split(tree, root, stems, where)
    image_base = posixpath.basename(image_dir).lower()
    mask_base = posixpath.basename(mask_dir).lower()
    mask_suffixes = {posixpath.splitext(masks[s])[1].lower() for s in stems}
    list_names = {posixpath.basename(n).lower() for n in tree.names()
                  if posixpath.dirname(n) == root}
    layout = "folder-pair"
    if image_base == "images" and mask_base == "masks":
        if mask_suffixes == {".png"} and {"train.txt", "test.txt"} <= list_names:
            layout = "kvasir-instrument"
        elif mask_suffixes <= {".jpg", ".jpeg"}:
            layout = "kvasir-seg"
    return DatasetIndex(
        source=path,
        layout=layout,
        root=root,
        stems=stems,
        images={s: images[s] for s in stems},
        masks={s: masks[s] for s in stems},
        unpaired=unpaired,
        official_split=official,
        split_files=split_files,
        tree=tree,
    )
