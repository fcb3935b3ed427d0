import numpy as np
import pytest
import torch
from PIL import Image

from endoxai.cli import main
from endoxai.config import Config
from endoxai.errors import UserError
from endoxai.models import Generator
from endoxai.predict import logits_to_mask, predict_files
from endoxai.train.checkpoint import FORMAT, VERSION, atomic_save


def test_all_negative_logits_give_an_empty_mask():
    # the paper's min-max stretch would turn this into a half-foreground mask
    logits = -5 + 0.1 * torch.randn(1, 8, 8)
    for mode in ("bilinear", "nearest"):
        assert not logits_to_mask(logits, (20, 30), mode).any()


def test_mask_is_logit_sign_at_original_size():
    logits = -torch.ones(1, 8, 8)
    logits[0, 2:6, 4:8] = 1
    for mode in ("bilinear", "nearest"):
        mask = logits_to_mask(logits, (16, 24), mode)
        assert mask.shape == (16, 24)
        expected = np.zeros((16, 24), bool)
        expected[4:12, 12:24] = True
        assert (mask == expected).mean() > 0.95
    nearest = logits_to_mask(logits, (16, 24), "nearest")
    assert (nearest == expected).all()


def test_bad_upsampling_mode():
    with pytest.raises(ValueError, match="bilinear"):
        logits_to_mask(torch.zeros(1, 4, 4), (4, 4), "cubic")


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "g.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
                 "generator": Generator().state_dict()}, path)
    return path


@pytest.fixture
def small_checkpoint(tmp_path):
    """A width-8 generator (1/64 of Table 1's weights); nothing tells predict its width."""
    torch.manual_seed(0)
    path = tmp_path / "g8.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "generator": Generator(width=8).state_dict(),
                 "config": Config().override(model={"width": 8}).to_dict()}, path)
    return path


@pytest.mark.parametrize("which", ["checkpoint", "small_checkpoint"])
def test_predict_files_matches_the_generator(which, request, tmp_path):
    checkpoint = request.getfixturevalue(which)
    width = torch.load(checkpoint, weights_only=True)["config"]["model"]["width"]
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(folder / "b.png")
    summary = predict_files(checkpoint, folder, tmp_path / "out", batch_size=2, device="cpu",
                            precision="fp32", progress=False)
    assert not summary.failures and len(summary.written) == 2
    # a 256x256 input needs no resizing: the written mask must be exactly sign(logit) of the model
    g = Generator(width=width)
    g.load_state_dict(torch.load(checkpoint, weights_only=True)["generator"])
    x = torch.from_numpy(np.array(Image.open(folder / "a.png"))).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = (g.eval().logits(x.float() / 127.5 - 1) > 0)[0, 0].numpy()
    written = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert ((written == 255) == expected).all() and set(np.unique(written)) <= {0, 255}
    assert np.asarray(Image.open(tmp_path / "out" / "b.png")).shape == (50, 70)


def test_never_overwrites_an_input(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (30, 30), (200, 10, 10)).save(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    # one image given as a file may share its folder with the masks, but a.png is its own output
    summary = predict_files(checkpoint, folder / "a.png", folder, device="cpu", progress=False)
    assert summary.failures and "overwrite" in summary.failures[0]
    assert (folder / "a.png").read_bytes() == before


@pytest.mark.parametrize("where", [".", "masks", "masks/deeper", "../in/./masks"])
def test_an_output_folder_in_the_input_folder_is_refused(checkpoint, tmp_path, where):
    # A rerun would read the masks written there as new images: masks of masks, snowballing.
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (30, 30), (200, 10, 10)).save(folder / "a.jpg")
    with pytest.raises(UserError, match="input folder.*a rerun would read the files written "
                                        "there as new inputs"):
        predict_files(checkpoint, folder, folder / where, device="cpu", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg"]  # nothing written or created


def test_cli_refuses_to_predict_into_the_input_folder(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (30, 30), (200, 10, 10)).save(folder / "a.jpg")
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(folder),
                 "--output", str(folder), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is the input folder" in err[0]
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg"]


def test_a_folder_left_empty_is_removed(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "new" / "masks"
    summary = predict_files(checkpoint, folder, out, device="cpu", progress=False)
    assert len(summary.failures) == 1 and not summary.written
    assert not (tmp_path / "new").exists()  # both folders this call made, and left empty, are gone


def test_missing_input(checkpoint, tmp_path):
    with pytest.raises(UserError, match="not found"):
        predict_files(checkpoint, tmp_path / "nope", tmp_path / "out", progress=False)


def test_bf16_masks_agree_with_fp32(checkpoint, tmp_path):
    """The default (auto) path may run bf16: its masks must match fp32 almost everywhere. An
    untrained generator's logits sit near 0, the hardest case for sign agreement."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    masks = {}
    for precision in ("fp32", "bf16"):
        predict_files(checkpoint, folder, tmp_path / precision, batch_size=2, device="cpu",
                      precision=precision, progress=False)
        masks[precision] = np.stack([np.asarray(Image.open(tmp_path / precision / f"{i}.png"))
                                     for i in range(3)])
    assert (masks["fp32"] == masks["bf16"]).mean() > 0.97


def test_fp16_is_refused_on_cpu(checkpoint, tmp_path):
    from endoxai.errors import UserError

    with pytest.raises(UserError, match="fp16"):
        predict_files(checkpoint, tmp_path, tmp_path / "out", device="cpu", precision="fp16")


def test_tta_averages_the_flipped_predictions():
    """With a generator that is not flip-equivariant, TTA must equal the mean of the four flipped
    passes, each flipped back (computed here by hand)."""
    from endoxai.predict import predict_logits

    torch.manual_seed(0)
    g = Generator().eval()
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    x = images.float() / 127.5 - 1
    with torch.no_grad():
        expected = (g.logits(x) + g.logits(x.flip(3)).flip(3) + g.logits(x.flip(2)).flip(2)
                    + g.logits(x.flip(2, 3)).flip(2, 3)) / 4
        plain = g.logits(x)
    got = predict_logits(g, images, "fp32", tta=True)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert (got - plain).abs().max() > 1e-3  # TTA changed something: the test can fail


def test_batched_logits_cover_every_image_in_order():
    """Batches of 2 over 3 images (the last one short) give each image its own logits."""
    from endoxai.predict import predict_logits, predict_logits_batched

    torch.manual_seed(0)
    g = Generator().eval()
    images = torch.randint(0, 256, (3, 3, 256, 256), dtype=torch.uint8)
    got = predict_logits_batched(g, images, 2)
    assert got.shape == (3, 1, 256, 256)
    for i in range(3):
        torch.testing.assert_close(got[i:i + 1], predict_logits(g, images[i:i + 1]),
                                   rtol=1e-4, atol=1e-4)
    assert (got[0] - got[2]).abs().max() > 1e-3  # the images differ: an order swap would show


def test_ids_select_the_images(checkpoint, tmp_path):
    from endoxai.errors import UserError

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / f"{name}.png")
    summary = predict_files(checkpoint, folder, tmp_path / "out", device="cpu", progress=False,
                            ids=["c", "a"])
    assert sorted(p.name for p in summary.written) == ["a.png", "c.png"]
    with pytest.raises(UserError, match="zzz"):
        predict_files(checkpoint, folder, tmp_path / "out2", device="cpu", ids=["a", "zzz"])


def test_prepared_bf16_model_gives_the_autocast_numbers():
    """Storing the conv weights in bf16 once must give exactly what autocast computes when it
    casts them on every call (the same rounded weights, the same kernels)."""
    import copy

    from endoxai.predict import predict_logits, prepare_for_inference

    torch.manual_seed(0)
    g = Generator().eval()
    images = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8)
    reference = predict_logits(copy.deepcopy(g).to(memory_format=torch.channels_last), images,
                               "bf16")
    prepared = prepare_for_inference(copy.deepcopy(g), "bf16")
    assert prepared.down2[0].weight.dtype == torch.bfloat16
    assert prepared.down2[1].weight.dtype == torch.float32  # BatchNorm stays float32
    torch.testing.assert_close(predict_logits(prepared, images, "bf16"), reference,
                               rtol=0, atol=1e-6)
    fp32 = prepare_for_inference(copy.deepcopy(g), "fp32")
    assert all(p.dtype == torch.float32 for p in fp32.parameters())


@pytest.fixture
def averaged_checkpoint(tmp_path):
    """A checkpoint of a run with a moving average: "generator" is the average, and the trained
    weights, here another random generator, are beside it as "generator_train"."""
    torch.manual_seed(0)
    average = Generator().state_dict()
    torch.manual_seed(1)
    path = tmp_path / "ema.pt"
    atomic_save({"format": FORMAT, "version": VERSION, "config": Config().to_dict(),
                 "generator": average, "generator_train": Generator().state_dict(),
                 "ema_updates": 10}, path)
    return path


def _sign_mask(state: dict, image: np.ndarray) -> np.ndarray:
    g = Generator()
    g.load_state_dict(state)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        return (g.eval().logits(x) > 0)[0, 0].numpy()


def test_trained_weights_predict_with_generator_train(averaged_checkpoint, tmp_path):
    from endoxai.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    image = np.random.default_rng(2).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(image).save(folder / "a.png")
    stored = torch.load(averaged_checkpoint, weights_only=True)
    expected = {key: _sign_mask(stored[key], image) for key in ("generator", "generator_train")}
    assert (expected["generator"] != expected["generator_train"]).mean() > 0.05  # can tell apart
    written = {}
    for key, flag in (("generator", []), ("generator_train", ["--trained-weights"])):
        out = tmp_path / key
        assert main(["predict", "--checkpoint", str(averaged_checkpoint), "--input", str(folder),
                     "--output", str(out), "--precision", "fp32", "--device", "cpu",
                     "--no-progress", *flag]) == 0
        written[key] = np.asarray(Image.open(out / "a.png")) == 255
    for key in expected:
        assert (written[key] == expected[key]).all(), key


def test_trained_weights_of_a_run_without_an_average_are_refused(checkpoint, tmp_path):
    Image.new("RGB", (30, 30)).save(tmp_path / "a.png")
    with pytest.raises(UserError, match="no moving average"):
        predict_files(checkpoint, tmp_path / "a.png", tmp_path / "out", progress=False,
                      trained=True)
