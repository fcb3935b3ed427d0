"""Data-parallel training under torchrun (train.distributed): sharding, equivalence, CLI, signals.

The end-to-end tests start ``python -m torch.distributed.run --standalone`` (a free local port,
no fixed rendezvous) with 2 CPU processes on the gloo backend, one thread each.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from endoxai.config import Config, load_config
from endoxai.data import augment, find_dataset, load_arrays, resolve_split
from endoxai.data.preprocess import to_model_input
from endoxai.errors import UserError
from endoxai.models import build_models
from endoxai.train.checkpoint import load_checkpoint
from endoxai.train.distributed import Distributed, process_group
from endoxai.train.interrupt import StopRequest
from endoxai.train.steps import adversarial_loss, segmentation_loss

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
GLOO = torch.distributed.is_available() and torch.distributed.is_gloo_available()
needs_gloo = pytest.mark.skipif(not GLOO, reason="torch.distributed with gloo is not available")
TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _make_pair_folder(root: Path, n: int) -> Path:
    """tests/conftest.py's synthetic Kvasir-like folder, with ``n`` pairs (its fixture has 6)."""
    spec = importlib.util.spec_from_file_location("_shared_conftest",
                                                  REPO / "tests" / "conftest.py")
    shared = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shared)
    return shared.make_pair_folder(root, n=n)


def _torchrun(args: list[str], tmp_path: Path, wait: bool = True, **env: str):
    """``torchrun --standalone --nproc_per_node=2 ARGS`` with one thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={WORLD}", *args]
    environ = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    environ.update(OMP_NUM_THREADS="1", **env)
    if not wait:
        return subprocess.Popen(command, cwd=tmp_path, env=environ, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(command, cwd=tmp_path, env=environ, text=True, capture_output=True,
                          timeout=300, check=False)


# --- sharding (no process group needed) ---------------------------------------------------

def test_each_rank_takes_every_world_th_sample_of_a_global_batch():
    batch = torch.arange(10, 18)
    assert Distributed(0, 2).shard(batch).tolist() == [10, 12, 14, 16]
    assert Distributed(1, 2).shard(batch).tolist() == [11, 13, 15, 17]
    images = torch.rand(6, 3, 4, 4)
    assert torch.equal(Distributed(2, 3).shard(images), images[[2, 5]])


@pytest.mark.parametrize("n, batch_size, world", [
    (8, 4, 2),  # even
    (10, 4, 2),  # short last batch that still splits evenly
    (9, 4, 2),  # short last batch of 1: padded by 1
    (7, 6, 3),  # short last batch of 1: padded by 2
    (13, 8, 4),  # 13 = 8 + 5: padded by 3
    (1, 4, 4),  # fewer samples than processes: repeated, as DistributedSampler does
])
def test_an_epoch_of_shards_is_distributed_samplers_assignment(n, batch_size, world):
    from torch.utils.data.distributed import DistributedSampler

    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    for rank in range(world):
        ddp = Distributed(rank, world)
        batches = ddp.split_batches(order, batch_size)
        assert all(len(b) % world == 0 for b in batches)  # every rank gets as many samples
        assert torch.equal(torch.cat(batches)[:n], order)  # the single-process batches, then pad
        mine = torch.cat([ddp.shard(b) for b in batches]).tolist()
        sampler = DistributedSampler(order.tolist(), num_replicas=world, rank=rank, shuffle=False)
        assert mine == [int(order[i]) for i in sampler]


def test_the_global_batch_must_split_evenly_over_the_processes():
    assert Distributed(1, 4).local_batch_size(8) == 2
    with pytest.raises(UserError, match="batch_size 5 is the global batch.*multiple of the 2"):
        Distributed(0, 2).local_batch_size(5)
    with pytest.raises(ValueError):
        Distributed(2, 2)


def test_one_process_is_left_unchanged():
    ddp = Distributed()
    assert ddp.is_main and not ddp.active and ddp.local_batch_size(5) == 5
    order = torch.randperm(7)
    assert [b.tolist() for b in ddp.split_batches(order, 3)] == [[*order[:3]], [*order[3:6]],
                                                                 [*order[6:]]]
    batch = torch.rand(3, 2)
    assert ddp.shard(batch) is batch
    logs = {"loss_g": 1.5}
    assert ddp.mean(logs) is logs
    g, d = nn.Linear(1, 1), nn.Linear(1, 1)
    assert ddp.wrap(g, d) == (g, d)
    before = torch.get_rng_state()
    ddp.split_rng()
    assert torch.equal(torch.get_rng_state(), before) and ddp.gather_rng_states() is None
    assert ddp.from_main(lambda: 7) == 7
    stop = StopRequest()
    assert ddp.agreed_signal(stop) == 0
    stop.signum = signal.SIGTERM
    assert ddp.agreed_signal(stop) == signal.SIGTERM


def test_process_group_joins_nothing_outside_torchrun(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    with process_group(torch.device("cpu")) as ddp:
        assert ddp == Distributed()
        assert not (torch.distributed.is_available() and torch.distributed.is_initialized())
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(UserError, match="RANK=2, WORLD_SIZE=2"), \
            process_group(torch.device("cpu")):
        pass


# --- DDP = gradient accumulation over the shards ------------------------------------------

EQUIVALENCE_RECIPE = """
[train]
epochs = 1
batch_size = 4
precision = "fp32"
num_threads = 1
lr_schedule = "constant"
seg_loss = "dice"

[model]
dropout = 0.0

[data]
val_fraction = 0.2
"""


def _reference(cfg: Config, data: Path, shards: int) -> tuple[dict[str, torch.Tensor], dict]:
    """One epoch of single-process training on fit's global batches (same seed, permutation and
    augmentation), written from the algorithm: per batch, a D step then a G step, each with its
    gradient accumulated over the slices ``batch[s::shards]`` (BatchNorm statistics per slice,
    losses divided by ``shards``). ``shards=1`` is plain training on the whole batch. Returns
    the parameters and the epoch's mean of the per-step (slice-averaged) losses."""
    tc = cfg.train
    index = find_dataset(data)
    split = resolve_split(index, cfg.data.val_fraction, tc.seed)
    train = load_arrays(index, split["train"], cfg.data.image_size, progress=False)
    torch.manual_seed(tc.seed)
    g, d = (m.to(memory_format=torch.channels_last) for m in build_models(cfg.model))
    opt_g = torch.optim.Adam(g.parameters(), tc.lr_g, betas=(tc.beta1, tc.beta2))
    opt_d = torch.optim.Adam(d.parameters(), tc.lr_d, betas=(tc.beta1, tc.beta2))
    data_rng = torch.Generator().manual_seed(tc.seed)
    order = torch.randperm(len(train.stems), generator=data_rng)
    sums = {"loss_d": 0.0, "loss_g": 0.0}
    batches = order.split(tc.batch_size)
    for idx in batches:
        images, masks = augment(to_model_input(train.images[idx]), train.masks[idx].float(),
                                cfg.data.augment, data_rng)
        parts = [(images[s::shards].contiguous(memory_format=torch.channels_last),
                  masks[s::shards].contiguous(memory_format=torch.channels_last))
                 for s in range(shards)]
        logits = [g.logits(x) for x, _ in parts]
        opt_d.zero_grad(set_to_none=True)
        for (x, y), z in zip(parts, logits):
            fake = torch.tanh(z.float()).detach()
            loss = 0.5 * (adversarial_loss(d(x, y * 2 - 1), real=True)
                          + adversarial_loss(d(x, fake), real=False))
            (loss / shards).backward()
            sums["loss_d"] += loss.item() / shards / len(batches)
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        d.requires_grad_(False)
        for (x, y), z in zip(parts, logits):
            fake = torch.tanh(z.float())
            loss = (adversarial_loss(d(x, fake), real=True)
                    + tc.l1_weight * F.l1_loss(fake, y * 2 - 1)
                    + tc.seg_weight * segmentation_loss(tc.seg_loss, z, y))
            (loss / shards).backward()
            sums["loss_g"] += loss.item() / shards / len(batches)
        d.requires_grad_(True)
        opt_g.step()
    params = {f"generator.{k}": v.detach() for k, v in g.named_parameters()}
    params.update({f"discriminator.{k}": v.detach() for k, v in d.named_parameters()})
    return params, sums


def _state(saved: dict) -> dict[str, torch.Tensor]:
    return {f"{part}.{k}": v for part in ("generator", "discriminator")
            for k, v in saved[part].items()}


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in b)


# Two Adam steps at lr 2e-4 move a parameter by at most ~4e-4 (Adam's early steps are ~lr per
# parameter, whatever the gradient's size). 1e-6 is 0.25 % of that: it admits float rounding
# from a different summation order but not a wrong shard, a missing reduction or BatchNorm over
# the whole batch (plain training lands ~1e-3 away; asserted below so the check can fail).
TOLERANCE = 1e-6


@pytest.mark.slow
@needs_gloo
@pytest.mark.parametrize("width", [64, 8])  # Table 1, and a model.width that is not
def test_two_ranks_train_identically_and_equal_gradient_accumulation(tmp_path, width):
    data = _make_pair_folder(tmp_path / "data", n=10)  # 8 train / 2 val pairs: 2 steps of 4
    recipe = tmp_path / "recipe.toml"
    # augmentation on (the default), dropout off
    recipe.write_text(EQUIVALENCE_RECIPE.replace("[model]\n", f"[model]\nwidth = {width}\n"))
    out = tmp_path / "out"
    started = time.perf_counter()
    done = _torchrun([str(Path(__file__).with_name("ddp_driver.py")), str(recipe), str(data),
                      str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    torchrun_seconds = time.perf_counter() - started
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    # (a) every rank holds the same weights and BatchNorm buffers, bit for bit
    states = [_state(r) for r in ranks]
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), f"ranks differ at {k}"
    checkpoint = load_checkpoint(out / "run" / "last.pt")
    assert all(torch.equal(v, states[0][k]) for k, v in _state(checkpoint).items())
    assert checkpoint["config"]["model"]["width"] == width
    assert states[0]["generator.down1.0.weight"].shape[0] == width
    assert states[0]["discriminator.block1.0.weight"].shape[0] == width

    # (b) ... which are single-process gradient accumulation over the same 2 shards per batch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        accumulated, losses = _reference(load_config(recipe), data, shards=WORLD)
        plain, _ = _reference(load_config(recipe), data, shards=1)
    finally:
        torch.set_num_threads(threads)
    to_accumulation = _max_difference(states[0], accumulated)
    to_plain = _max_difference(states[0], plain)
    print(f"\nDDP ({WORLD} ranks, {torchrun_seconds:.0f} s): max |Δ param| to gradient "
          f"accumulation {to_accumulation:.3g}, to plain batch-4 training {to_plain:.3g}")
    assert to_accumulation <= TOLERANCE
    assert to_plain > 100 * TOLERANCE  # per-shard BatchNorm is visible: the check can fail
    # history.csv means what it means in one process: the global batch's mean losses
    history = ranks[0]["history"]
    assert len(history) == 1
    for key in ("loss_d", "loss_g"):
        assert history[0][key] == ranks[1]["history"][0][key]
    for key in ("loss_d", "loss_g"):
        assert history[0][key] == pytest.approx(losses[key], rel=1e-5), key


# --- the CLI under torchrun ----------------------------------------------------------------

SMOKE_RECIPE = """
[train]
epochs = 1
batch_size = 4
precision = "fp32"
num_threads = 1
ema_decay = 0.9

[data]
val_fraction = 0.34
"""


@pytest.mark.slow
@needs_gloo
def test_torchrun_cli_trains_with_rank_0_writing_and_logging(tmp_path):
    data = _make_pair_folder(tmp_path / "data", n=6)  # 4 train / 2 val: one step of 2 + 2
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(SMOKE_RECIPE)
    train = ["-m", "endoxai", "train", "--data", str(data), "--config", str(recipe),
             "--no-progress"]

    refused = _torchrun([*train, "--out", "odd", "--batch-size", "3"], tmp_path)
    assert refused.returncode != 0
    assert refused.stderr.count("train.batch_size 3 is the global batch") == WORLD  # every rank
    assert not (tmp_path / "odd" / "last.pt").exists()

    done = _torchrun([*train, "--out", "run"], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    run = tmp_path / "run"
    for name in ("last.pt", "best.pt", "history.csv", "config.toml", "split.json"):
        assert (run / name).is_file(), name
    assert len(list((run / "tb").iterdir())) == 1  # one TensorBoard writer
    assert not list(run.glob(".*.tmp"))
    assert len(re.findall(r"^epoch 1/1 ", done.stderr, re.MULTILINE)) == 1, done.stderr
    assert done.stderr.count("2 processes: global batch 4, 2 per process") == 1
    assert done.stdout.count("trained 1 epochs") == 1
    rows = list(csv.DictReader((run / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1"]
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 1 and "partial" not in ckpt
    assert len(ckpt["rng"]["torch_ranks"]) == WORLD
    # the weight average (train.ema_decay) is kept beside the trained weights, one update a step
    assert ckpt["ema_updates"] == 1 and ckpt["generator_train"].keys() == ckpt["generator"].keys()


# --- signals, resume and divergence under torchrun (tiny models) -----------------------------

def _cli(runner: list[str], tmp_path: Path, args: list[str], wait: bool = True, **env: str):
    exits = tmp_path / f"exits-{args[args.index('--out') + 1]}"
    exits.mkdir(exist_ok=True)
    proc = _torchrun([str(Path(__file__).with_name("ddp_cli.py")), "train", *args], tmp_path,
                     wait=wait, ENDOXAI_TEST_RUNNER=runner[1], ENDOXAI_TEST_EXIT_DIR=str(exits),
                     **env)
    return proc, exits


def _exit_codes(exits: Path) -> list[int]:
    return [int((exits / f"exit{r}").read_text()) for r in range(WORLD)]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return _state(load_checkpoint(path))


@pytest.mark.slow
@needs_gloo
def test_sigterm_stops_every_rank_after_one_step_and_resume_is_exact(
    runner, tiny_recipe, pair_folder, tmp_path
):
    # 4 train pairs, global batch 2 (1 per rank): 2 steps per epoch, 2 epochs; TinyG has dropout
    common = ["--data", str(pair_folder), "--no-progress"]
    straight, _ = _cli(runner, tmp_path,
                       [*common, "--out", "straight", "--config", str(tiny_recipe)])
    assert straight.returncode == 0, straight.stderr[-4000:]

    trace = tmp_path / "trace"
    proc, exits = _cli(runner, tmp_path, [*common, "--out", "cut", "--config", str(tiny_recipe)],
                       wait=False, ENDOXAI_TEST_TRACE=str(trace), ENDOXAI_TEST_STEP_DELAY="2")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if trace.exists() and trace.read_text().split().count("step") >= WORLD:  # step 1 on both
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to torchrun, which forwards it to every rank
    _, stderr = proc.communicate(timeout=120)
    assert _exit_codes(exits) == [143] * WORLD, stderr[-4000:]
    said = re.findall(r"interrupted by SIGTERM; \S*last\.pt: resumable, epoch 1 stopped after "
                      r"step 1 of 2", stderr)  # the ranks' lines may interleave
    assert len(said) == WORLD, stderr[-4000:]
    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ckpt["epoch"] == 0 and ckpt["partial"]["step"] == 1

    resumed, exits = _cli(runner, tmp_path, [*common, "--out", "cut", "--resume"])
    assert resumed.returncode == 0 and _exit_codes(exits) == [0] * WORLD, resumed.stderr[-4000:]
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "cut" / "last.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), f"resume diverged at {k}"
    history = [load_checkpoint(tmp_path / x / "last.pt")["history"] for x in ("straight", "cut")]
    assert [r["loss_g"] for r in history[0]] == [r["loss_g"] for r in history[1]]


@pytest.mark.slow
@needs_gloo
def test_nan_on_one_rank_stops_every_rank_at_the_same_step(runner, tiny_recipe, pair_folder,
                                                           tmp_path):
    done, exits = _cli(runner, tmp_path, ["--data", str(pair_folder), "--out", "run", "--config",
                                          str(tiny_recipe), "--no-progress"],
                       ENDOXAI_TEST_POISON="1:3")  # rank 1's D, first step of epoch 2
    assert _exit_codes(exits) == [2] * WORLD, done.stderr[-4000:]
    said = re.findall(r"training diverged at epoch 2, step 1 of 2 \(global step 3\)", done.stderr)
    assert len(said) == WORLD, done.stderr[-4000:]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and "partial" not in ckpt
