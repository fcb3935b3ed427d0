import pytest
import torch

from endoxai.models import Generator

ENC = (64, 128, 256, 512, 512, 512, 512, 512)  # Table 1, written out independently of the code
DEC = (512, 512, 512, 512, 256, 128, 64, 1)


def expected_parameter_count() -> int:
    k = 4 * 4
    total = 3 * 64 * k + 64  # down1: conv + bias, no BN
    c_in = 64
    for c in ENC[1:7]:  # down2..down7: conv without bias + BN (scale, shift)
        total += c_in * c * k + 2 * c
        c_in = c
    total += 512 * 512 * k + 512  # down8: conv + bias, no BN
    ups_in = (512, 1024, 1024, 1024, 1024, 512, 256, 128)
    for i, (ci, co) in enumerate(zip(ups_in, DEC)):
        total += ci * co * k + (2 * co if i < 7 else co)  # BN in up1..up7, bias in up8
    return total


def test_parameter_count_matches_table1():
    g = Generator()
    assert sum(p.numel() for p in g.parameters()) == expected_parameter_count()


@pytest.mark.parametrize("size", [256, 512])
def test_block_shapes(size):
    g = Generator().eval()
    shapes = {}
    for name, module in g.named_children():
        module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    with torch.no_grad():
        out = g(torch.zeros(1, 3, size, size))
    for i, c in enumerate(ENC, start=1):
        assert shapes[f"down{i}"] == (1, c, size >> i, size >> i)
    for i, c in enumerate(DEC, start=1):
        s = size >> (8 - i)
        assert shapes[f"up{i}"] == (1, c, s, s)
    assert out.shape == (1, 1, size, size)


def test_forward_is_tanh_of_logits():
    g = Generator().eval()
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(g(x), torch.tanh(g.logits(x)))
        assert g(x).abs().max() <= 1


def test_layers_follow_table1():
    g = Generator()
    bn = [isinstance(g.get_submodule(f"down{i}")[1], torch.nn.BatchNorm2d) for i in range(1, 9)]
    assert bn == [False] + [True] * 6 + [False]
    drop = [any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in g.get_submodule(f"up{i}"))
            for i in range(1, 9)]
    assert drop == [True] * 3 + [False] * 5
    for m in g.modules():
        assert not getattr(m, "inplace", False), f"in-place activation {m}"
        if isinstance(m, torch.nn.LeakyReLU):
            assert m.negative_slope == 0.2
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            assert m.kernel_size == (4, 4) and m.stride == (2, 2)


@pytest.mark.parametrize("shape", [(1, 3, 100, 256), (1, 3, 256, 384), (3, 256, 256)])
def test_bad_input_size_raises(shape):
    with pytest.raises(ValueError, match="256|N, C, H, W"):
        Generator().logits(torch.zeros(shape))


def test_non_square_multiple_of_256_works():
    with torch.no_grad():
        assert Generator().eval()(torch.zeros(1, 3, 256, 512)).shape == (1, 1, 256, 512)


def test_generator_logits_module_shares_the_generator():
    from endoxai.models import GeneratorLogits

    torch.manual_seed(0)
    g = Generator().eval()
    wrapped = GeneratorLogits(g)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), g.logits(x), rtol=0, atol=0)
        assert not torch.equal(wrapped(x), g(x))  # forward is the pre-tanh output, not tanh
    assert all(a is b for a, b in zip(wrapped.parameters(), g.parameters()))
