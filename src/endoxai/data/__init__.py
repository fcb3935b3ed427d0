"""Datasets (Kvasir-SEG, Kvasir-Instrument, folder pairs, archives), splits, decoding, augmentation.

Typical use in training::

    index = find_dataset(path)                       # folder or archive; UserError if unusable
    split = resolve_split(index, cfg.data.val_fraction, cfg.train.seed, run_dir)
    train = load_arrays(index, split["train"], cfg.data.image_size)   # decoded once per run
    images, masks = augment(to_model_input(x), m.float(), cfg.data.augment, generator)
"""

from endoxai.data.augment import augment
from endoxai.data.cache import Arrays, decode_pair, load_arrays, shuffle_masks
from endoxai.data.check import CheckReport, Problem, check_dataset
from endoxai.data.download import DATASETS, download
from endoxai.data.info import DatasetInfo, dataset_info
from endoxai.data.io import list_images, list_inputs, read_image, read_mask
from endoxai.data.layouts import LAYOUTS, DatasetIndex, find_dataset
from endoxai.data.splits import SPLIT_FILE, read_split, resolve_split, seeded_split, write_split

__all__ = [
    "DATASETS",
    "LAYOUTS",
    "SPLIT_FILE",
    "Arrays",
    "CheckReport",
    "DatasetIndex",
    "DatasetInfo",
    "Problem",
    "augment",
    "check_dataset",
    "dataset_info",
    "decode_pair",
    "download",
    "find_dataset",
    "list_images",
    "list_inputs",
    "load_arrays",
    "read_image",
    "read_mask",
    "read_split",
    "resolve_split",
    "seeded_split",
    "shuffle_masks",
    "write_split",
]
