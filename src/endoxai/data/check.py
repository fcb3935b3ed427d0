"""Dataset integrity check: every problem of a dataset folder or archive, each fatal or a warning.

``endoxai data check DIR`` prints the report; ``endoxai train`` runs the same check first and
refuses a dataset with a fatal problem before any other work. Like nnU-Net's
``verify_dataset_integrity``, every pair is decoded, so a corrupt file is found now and not hours
into training.

Fatal (training would learn from wrong data, or the data is not what it claims to be):

- ``unreadable``: an image or mask of a pair cannot be decoded (empty, truncated, corrupt, not an
  image, a decompression bomb, no permission);
- ``size-mismatch``: a mask's size differs from its image's (after EXIF orientation);
- ``duplicate-name``: two files with one id in the image or mask folder (``a.jpg`` + ``a.png``):
  which one is the pair is a guess;
- ``not-a-mask``: a mask's grey values are not two-valued (a photograph, a probability map) or
  its two levels lie on one side of the 127.5 threshold (a colour mask whose foreground is dark in
  grey would read as empty): ``endoxai.data.masklike.mask_problem``, the test ``endoxai evaluate``
  applies; or more than half of its pixels are mid-grey (32..223 of 255).

Warnings (training goes on, and does what the message says):

- ``unpaired``: an image without a mask or a mask without an image (ignored);
- ``ignored-file``: an entry of the image or mask folder that is not an image file (another
  suffix such as ``.gif``, a folder, a FIFO, a broken link; folder datasets only);
- ``non-binary``: 1 % to 50 % of a mask's pixels are mid-grey (soft edges; thresholded at 127.5);
- ``empty-mask``: no foreground after thresholding (a hint is added when the mask is not black:
  a 0/1 mask saved as JPEG, or a colour mask whose foreground is dark in grey, reads as empty);
- ``full-mask``: every pixel is foreground;
- ``tiny-image``: an image smaller than 32 pixels on a side (upscaled to the model size);
- ``duplicate-image``: images with identical bytes (SHA-256) under different ids; across the
  official train and validation lists this inflates the validation score;
- ``split-unknown-id``: a split list names an id that has no image/mask pair (ignored);
- ``split-unlisted``: a pair is in no split list (not used).

Problems that stop even the check (no dataset, no pair at all, an id in both split lists) are
raised by ``find_dataset`` as UserError.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from endoxai.data.io import IMAGE_SUFFIXES, binarize_mask, read_image, read_mask_grey
from endoxai.data.layouts import DatasetIndex, _read_ids, find_dataset
from endoxai.data.masklike import mask_problem
from endoxai.errors import ItemError, UserError

logger = logging.getLogger(__name__)

FATAL_KINDS = ("unreadable", "size-mismatch", "duplicate-name", "not-a-mask")
WARNING_KINDS = ("unpaired", "ignored-file", "non-binary", "empty-mask", "full-mask", "tiny-image",
                 "duplicate-image", "split-unknown-id", "split-unlisted")
GREY_BAND = (32, 223)  # grey values this far from 0 and 255 are not JPEG noise around a binary mask
NON_BINARY_FRACTION = 0.01  # share of mid-grey pixels above which a mask is non-binary (warning)
NOT_A_MASK_FRACTION = 0.5  # ... and above which it is not a binary mask at all (fatal)
TINY_SIDE = 32  # pixels
CHECK_WORKERS = 2  # decoding threads (PIL releases the GIL)


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` (see the module docstring), fatal or not, a one-line message that
    names the file(s)."""

    kind: str
    message: str

    @property
    def fatal(self) -> bool:
        return self.kind in FATAL_KINDS


@dataclass
class CheckReport:
    """The result of check_dataset: where, how many pairs were decoded, every problem found."""

    where: str
    source: str
    pairs: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.fatal]

    def lines(self) -> list[str]:
        """One line per problem (errors first), then a summary line."""
        width = max(len(k) for k in FATAL_KINDS + WARNING_KINDS)
        out = [f"{'error' if p.fatal else 'warning':<8} {p.kind:<{width}}  {_one_line(p.message)}"
               for p in self.errors + self.warnings]
        out.append(self.summary())
        return out

    def summary(self) -> str:
        verdict = ("training refuses this dataset" if self.errors
                   else "usable for training")
        return (f"{self.where}: {self.pairs} pair(s) checked, {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s): {verdict}")

    def raise_if_fatal(self) -> None:
        """UserError (one line: the count, the first error, how to see all) if anything is fatal."""
        if self.errors:
            raise UserError(
                f"{self.where}: the data check found {len(self.errors)} error(s), e.g. "
                f"{self.errors[0].kind}: {self.errors[0].message}; run `endoxai data check "
                f"{self.source}` to list every problem"
            )

    def log_warnings(self) -> None:
        """One log line per kind of warning: the count and the first message."""
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for p in self.warnings:
            by_kind[p.kind].append(p)
        for kind, found in by_kind.items():
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            logger.warning("data check: %s: %s%s", kind, found[0].message, more)


def _one_line(text: str) -> str:
    """A file name may hold a newline; a report line must not."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def check_dataset(
    data: str | Path | DatasetIndex, progress: bool = True, workers: int = CHECK_WORKERS
) -> CheckReport:
    """Decode every pair of the dataset at ``data`` (a folder, an archive, or an index from
    find_dataset) and list every problem (module docstring). Raises UserError as find_dataset
    for problems that leave nothing to check.
    """
    index = data if isinstance(data, DatasetIndex) else find_dataset(data)
    try:
        report = CheckReport(index.where, str(index.source), len(index.stems))
        report.problems += _name_problems(index)
        report.problems += _split_problems(index)
        digests: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            results = pool.map(lambda stem: _check_pair(index, stem), index.stems)
            for stem, (problems, digest) in tqdm(zip(index.stems, results), total=len(index.stems),
                                                 desc="checking", unit="pair",
                                                 disable=None if progress else True):
                report.problems += problems
                if digest is not None:
                    digests[stem] = digest
        report.problems += _duplicate_images(index, digests)
        return report
    finally:
        if not isinstance(data, DatasetIndex):
            index.tree.close()


def _folders(index: DatasetIndex) -> tuple[str, str]:
    """(image folder, mask folder) as names inside the tree."""
    stem = index.stems[0]
    return posixpath.dirname(index.images[stem]), posixpath.dirname(index.masks[stem])


def _name_problems(index: DatasetIndex) -> list[Problem]:
    problems = [Problem("unpaired", f"{name}: no partner with the same name; ignored")
                for name in index.unpaired]
    for folder in _folders(index):
        by_stem: dict[str, list[str]] = defaultdict(list)
        for name in index.tree.names():
            parent, base = posixpath.split(name)
            if parent == folder and posixpath.splitext(base)[1].lower() in IMAGE_SUFFIXES:
                by_stem[posixpath.splitext(base)[0]].append(name)
        for stem, names in sorted(by_stem.items()):
            if len(names) > 1:
                shown = " + ".join(posixpath.basename(n) for n in sorted(names))
                problems.append(Problem(
                    "duplicate-name",
                    f"{index.tree.display(folder)}: {len(names)} files for id {stem} ({shown}); "
                    "keep one",
                ))
        problems += _ignored_entries(index, folder)
    return problems


def _ignored_entries(index: DatasetIndex, folder: str) -> list[Problem]:
    """Entries of an image/mask folder on disk that the dataset does not use (folders only)."""
    if index.tree.kind != "folder":
        return []
    path = Path(index.tree.origin) / folder
    try:
        entries = sorted(path.iterdir())
    except OSError:
        return []
    problems = []
    for entry in entries:
        name = f"{folder}/{entry.name}" if folder else entry.name
        if entry.name.startswith(".") or name in index.tree:
            continue
        if entry.is_dir():
            why = "a folder"
        elif entry.suffix.lower() not in IMAGE_SUFFIXES:
            why = f"not an image file type ({', '.join(IMAGE_SUFFIXES)})"
        elif not entry.exists():
            why = "a broken link"
        else:
            why = "not a regular file"
        problems.append(Problem("ignored-file", f"{entry}: {why}; ignored"))
    return problems


def _split_problems(index: DatasetIndex) -> list[Problem]:
    if index.official_split is None:
        return []
    known = set(index.stems)
    problems = []
    for name in index.split_files:
        for stem in sorted(set(_read_ids(index.tree, name)) - known):
            problems.append(Problem(
                "split-unknown-id",
                f"{index.tree.display(name)} names {stem}, which has no image/mask pair; ignored",
            ))
    listed = set(index.official_split["train"]) | set(index.official_split["val"])
    lists = " / ".join(posixpath.basename(n) for n in index.split_files)
    for stem in sorted(known - listed):
        problems.append(Problem("split-unlisted",
                                f"{index.tree.display(index.images[stem])}: "
                                f"in no split list ({lists}); not used"))
    return problems


def _check_pair(index: DatasetIndex, stem: str) -> tuple[list[Problem], str | None]:
    """Problems of one pair and the SHA-256 of its image bytes (None if unreadable)."""
    image_name = index.tree.display(index.images[stem])
    mask_name = index.tree.display(index.masks[stem])
    try:
        data = _bytes(index, index.images[stem], image_name)
        image = read_image(data, image_name)
        grey = read_mask_grey(_bytes(index, index.masks[stem], mask_name), mask_name)
    except ItemError as err:
        return [Problem("unreadable", str(err))], None
    digest = hashlib.sha256(data).hexdigest()
    (h, w), (mh, mw) = image.shape[:2], grey.shape
    if (h, w) != (mh, mw):
        return [Problem("size-mismatch", f"{mask_name}: mask is {mw}x{mh} but its image "
                                         f"{image_name} is {w}x{h}")], digest
    problems = []
    if min(h, w) < TINY_SIDE:
        problems.append(Problem("tiny-image", f"{image_name}: only {w}x{h} pixels; upscaled to "
                                              "the model size"))
    problems += _mask_problems(grey, mask_name)
    return problems, digest


def _bytes(index: DatasetIndex, name: str, display: str) -> bytes:
    try:
        return index.tree.read_bytes(name)
    except PermissionError as err:
        raise ItemError(f"{display}: permission denied") from err
    except OSError as err:
        raise ItemError(f"{display}: cannot read ({err.strerror or err})") from err


def _mask_problems(grey: np.ndarray, name: str) -> list[Problem]:
    if grey.size == 0:
        return [Problem("unreadable", f"{name}: mask has no pixels")]
    peak = grey.max()
    mid = 0.0
    if peak > 1:  # 0/1 masks are binary by construction
        lo, hi = GREY_BAND
        mid = float(((grey > lo) & (grey < hi)).mean())
        why = mask_problem(grey)
        if why is None and mid > NOT_A_MASK_FRACTION:  # e.g. one mid-grey level
            why = (f"{mid:.0%} of the pixels are mid-grey ({lo + 1}..{hi - 1} after conversion "
                   "to grey)")
        if why is not None:
            return [Problem("not-a-mask", f"{name}: {why}; not a binary mask")]
    mask = binarize_mask(grey)
    if not mask.any():
        hint = ""
        if peak > 0 and (grey > 0).mean() > NON_BINARY_FRACTION:
            hint = (f", but it is not black (values up to {peak:.0f}): a 0/1 mask saved as JPEG, "
                    "or a colour mask whose foreground is dark in grey?")
        return [Problem("empty-mask", f"{name}: no foreground (grey > 127.5){hint}")]
    if mask.all():
        return [Problem("full-mask", f"{name}: every pixel is foreground")]
    if mid > NON_BINARY_FRACTION:
        return [Problem("non-binary", f"{name}: {mid:.1%} of the pixels are mid-grey; "
                                      "thresholded at 127.5")]
    return []


def _duplicate_images(index: DatasetIndex, digests: dict[str, str]) -> list[Problem]:
    groups: dict[str, list[str]] = defaultdict(list)
    for stem, digest in digests.items():
        groups[digest].append(stem)
    side = {}
    if index.official_split is not None:
        side = {s: k for k in ("train", "val") for s in index.official_split[k]}
    problems = []
    for stems in sorted(g for g in groups.values() if len(g) > 1):
        names = ", ".join(index.tree.display(index.images[s]) for s in stems)
        sides = {side.get(s) for s in stems} - {None}
        leak = "; in both train and val lists: the validation score is inflated" \
            if sides == {"train", "val"} else ""
        problems.append(Problem("duplicate-image", f"identical image bytes: {names}{leak}"))
    return problems
