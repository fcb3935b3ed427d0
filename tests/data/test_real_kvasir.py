"""The real datasets in ../shared/data (skipped when absent)."""

from pathlib import Path

import pytest
import torch

from endoxai.data import find_dataset, load_arrays, resolve_split
from endoxai.errors import UserError

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
KVASIR_SEG = SHARED_DATA / "kvasir-seg"
KVASIR_INSTRUMENT = SHARED_DATA / "kvasir-instrument"


@pytest.mark.skipif(not (KVASIR_SEG / "images").is_dir(), reason="no ../shared/data/kvasir-seg")
def test_real_kvasir_seg_layout_official_split_and_decoding(tmp_path):
    index = find_dataset(KVASIR_SEG)
    assert index.layout == "kvasir-seg"
    assert len(index.stems) == 1000 and index.unpaired == []
    split = resolve_split(index, val_fraction=0.5, seed=7, run_dir=tmp_path)
    assert len(split["train"]) == 880 and len(split["val"]) == 120  # the Medico 2020 lists
    listed = (KVASIR_SEG / "val.txt").read_text().split()
    assert split["val"] == sorted(listed)
    stems = split["val"][:3]
    arrays = load_arrays(index, stems, 256, progress=False)
    assert arrays.failures == [] and arrays.stems == stems
    assert arrays.images.shape == (3, 3, 256, 256) and arrays.images.dtype == torch.uint8
    assert set(arrays.masks.unique().tolist()) == {0, 1}
    fraction = arrays.masks.float().mean(dim=(1, 2, 3))
    assert ((fraction > 0.003) & (fraction < 0.85)).all()  # polyps cover 0.5 %..81 % (SOURCES.md)
    assert arrays.images.float().std() > 10  # real pictures, not blank


@pytest.mark.skipif(not (KVASIR_INSTRUMENT / "masks").is_dir(),
                    reason="no ../shared/data/kvasir-instrument")
def test_real_kvasir_instrument_masks_only_folder_is_a_clear_error():
    with pytest.raises(UserError, match="590 mask.*no image folder.*images.tar.gz"):
        find_dataset(KVASIR_INSTRUMENT)
