"""Decoding a dataset's pairs once into uint8 tensors at the model size (the in-memory cache)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from endoxai.data.io import read_image, read_mask
from endoxai.data.layouts import DatasetIndex
from endoxai.data.preprocess import resize_image, resize_mask
from endoxai.errors import ItemError, UserError

logger = logging.getLogger(__name__)

DECODE_WORKERS = 2  # PIL releases the GIL while decoding/resizing; the target machine has 2 cores


@dataclass
class Arrays:
    """Decoded pairs at the model size, kept for the whole run so each file is decoded once.

    images: uint8 (N, 3, size, size) RGB in [0, 255]; masks: uint8 (N, 1, size, size) in {0, 1};
    stems: the N ids that decoded, in the requested order; failures: one line per skipped pair.
    """

    images: torch.Tensor
    masks: torch.Tensor
    stems: list[str]
    failures: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.stems)


def decode_pair(index: DatasetIndex, stem: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (size, size, 3), bool (size, size)) for ``stem``; ItemError naming the bad file.

    The image and mask must have the same size after EXIF orientation (else ItemError), since a
    mismatch means they are not a pair or one of them was rotated.
    """
    source, name = index.image_source(stem)
    image = read_image(source, name)
    source, mask_name = index.mask_source(stem)
    mask = read_mask(source, mask_name)
    if image.shape[:2] != mask.shape:
        raise ItemError(
            f"{mask_name}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {name} is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    # PIL-backed arrays are read-only; torch.from_numpy wants writable memory.
    return (np.require(resize_image(image, size), requirements="W"),
            np.require(resize_mask(mask, size), requirements="W"))


def load_arrays(
    index: DatasetIndex,
    stems: list[str],
    size: int,
    progress: bool = True,
    workers: int = DECODE_WORKERS,
) -> Arrays:
    """Decode the pairs ``stems`` of ``index`` to ``size`` x ``size`` uint8 tensors (see Arrays).

    Images: RGB, EXIF orientation applied, bilinear resize; masks: grey > 127.5 (0/1 masks: > 0.5),
    resized then re-thresholded (preprocess.resize_mask). A pair that cannot be read is skipped
    with a one-line warning naming the file and listed in ``failures``; the caller decides whether
    that is fatal. ``workers`` decoding threads; a tqdm bar when ``progress`` (hidden if not a TTY).
    """
    unknown = [s for s in stems if s not in index.images]
    if unknown:
        raise KeyError(f"not pairs of {index.where}: {', '.join(unknown[:5])}")
    n = len(stems)
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    masks = torch.empty((n, 1, size, size), dtype=torch.uint8)
    ok = torch.zeros(n, dtype=torch.bool)
    failures: list[tuple[int, str]] = []
    bar = tqdm(total=n, desc="decoding", unit="pair", disable=None if progress else True,
               dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(decode_pair, index, stem, size): i for i, stem in enumerate(stems)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    image, mask = future.result()
                except ItemError as err:
                    failures.append((i, str(err)))
                    logger.warning("skipped: %s", err)
                else:
                    images[i] = torch.from_numpy(image).permute(2, 0, 1)
                    masks[i, 0] = torch.from_numpy(mask)
                    ok[i] = True
                bar.update()
        except BaseException:
            for future in futures:  # Ctrl-C: do not decode the rest before re-raising
                future.cancel()
            raise
        finally:
            bar.close()
    keep = ok.nonzero().flatten()
    if len(keep) < n:
        images, masks = images[keep], masks[keep]
    return Arrays(
        images=images,
        masks=masks,
        stems=[stems[i] for i in keep.tolist()],
        failures=[msg for _, msg in sorted(failures)],
    )


def shuffle_masks(arrays: Arrays, seed: int) -> Arrays:
    """The same images, each with another image's mask: a seeded random cycle through all of
    them, so that no image keeps its own (Adebayo et al. 2018's data randomisation)."""
    n = len(arrays)
    if n < 2:
        raise UserError("data.shuffle_masks needs at least two training pairs")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    source = torch.empty(n, dtype=torch.long)
    source[order] = order.roll(-1)  # image order[i] gets the mask of order[i + 1]
    return Arrays(arrays.images, arrays.masks[source], arrays.stems, arrays.failures)
