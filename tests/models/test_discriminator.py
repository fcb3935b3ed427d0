import pytest
import torch

from endoxai.models import Discriminator


@pytest.mark.parametrize("size,patches", [(256, 30), (512, 62)])
def test_patch_map_shape(size, patches):
    d = Discriminator()
    out = d(torch.zeros(2, 3, size, size), torch.zeros(2, 1, size, size))
    assert out.shape == (2, 1, patches, patches)


def test_table1_filters_and_strides():
    d = Discriminator()
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert convs[0].in_channels == 4  # image + mask


def test_sees_the_mask():
    d = Discriminator().eval()
    x = torch.rand(1, 3, 256, 256)
    a, b = d(x, torch.ones(1, 1, 256, 256)), d(x, -torch.ones(1, 1, 256, 256))
    assert not torch.allclose(a, b)
