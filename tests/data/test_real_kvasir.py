"""The real datasets in the data folder (tests/conftest.py; skipped when absent)."""

import pytest
import torch

from endoxai.data import find_dataset, load_arrays, resolve_split
from endoxai.errors import UserError

def test_real_kvasir_seg_layout_official_split_and_decoding(kvasir_seg, tmp_path):
    index = find_dataset(kvasir_seg)
    assert index.layout == "kvasir-seg"
    assert len(index.stems) == 1000 and index.unpaired == []
    split = resolve_split(index, val_fraction=0.5, seed=7, run_dir=tmp_path)
    assert len(split["train"]) == 880 and len(split["val"]) == 120  # the Medico 2020 lists
    listed = (kvasir_seg / "val.txt").read_text().split()
    assert split["val"] == sorted(listed)
    stems = split["val"][:3]
    arrays = load_arrays(index, stems, 256, progress=False)
    assert arrays.failures == [] and arrays.stems == stems
    assert arrays.images.shape == (3, 3, 256, 256) and arrays.images.dtype == torch.uint8
    assert set(arrays.masks.unique().tolist()) == {0, 1}
    fraction = arrays.masks.float().mean(dim=(1, 2, 3))
    assert ((fraction > 0.003) & (fraction < 0.85)).all()  # polyps cover 0.5 %..81 % (SOURCES.md)
    assert arrays.images.float().std() > 10  # real pictures, not blank


def test_real_kvasir_instrument_masks_only_folder_is_a_clear_error(kvasir_instrument):
    with pytest.raises(UserError, match="590 mask.*no image folder.*images.tar.gz"):
        find_dataset(kvasir_instrument)
