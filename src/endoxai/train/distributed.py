"""Data-parallel training under ``torchrun``: the process group, batch sharding, rank agreement.

``torchrun --nproc_per_node=W -m endoxai train ...`` starts W processes; ``fit`` joins them
through ``process_group`` (gloo on CPU, NCCL on CUDA with one GPU per process, ``cuda:LOCAL_RANK``).
Without torchrun (or with ``WORLD_SIZE=1``) nothing is initialised and every helper below is
the identity or a no-op, so single-process training is unchanged bit for bit.

Semantics with W processes:

- ``train.batch_size`` stays the *global* batch; each rank computes ``batch_size / W`` samples
  per step (UserError if W does not divide it).
- Every rank draws the same epoch permutation and, per global batch, the same augmentation of
  the whole batch (same seed, same ``data_rng`` calls), then keeps ``batch[rank::W]``. Over an
  epoch that is exactly ``torch.utils.data.distributed.DistributedSampler``'s assignment
  (``indices[rank::W]``, the short last batch padded with the permutation's first samples), which
  the tests check against DistributedSampler itself; the sampler is not used because the data
  are in-memory tensors and the permutation must come from the resumable ``data_rng``.
- Gradients are averaged by ``torch.nn.parallel.DistributedDataParallel``. ``train_step`` calls
  ``g.logits(x)``, and DDP hooks only ``forward``, so the generator is wrapped in a module whose
  ``forward`` is ``logits``. The discriminator goes through DDP in both steps: the D step calls it
  twice (real, fake) before one backward, which DDP allows without ``find_unused_parameters``;
  in the G step its parameters have ``requires_grad=False``, so no autograd hook fires and DDP
  reduces nothing.
- BatchNorm normalises with per-rank (local batch) statistics, on CPU and CUDA alike
  (``SyncBatchNorm`` supports no CPU tensors; one behaviour on both is easier to reason about).
  The exact single-process equivalent is gradient accumulation over the W shards of each global
  batch. The running statistics are averaged over the ranks after every step, so every rank
  holds identical weights *and* buffers and rank 0's checkpoint is the model.
- Dropout draws from the global RNG; each rank gets its own stream (derived from the run seed),
  all of which a checkpoint stores (``rng.torch_ranks``) so that a resume with the same number
  of processes continues exactly.
- Rank 0 alone writes (checkpoints, history, TensorBoard, config, split), validates, shows
  progress bars and logs below ERROR; the others wait for it. A SIGINT/SIGTERM on any rank
  (torchrun forwards the one it gets to every process) is agreed on by all ranks before each
  step, so they stop after the same step; a non-finite loss shows on every rank because the step
  logs are averaged over the ranks.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import nn

from endoxai.errors import Interrupted, UserError
from endoxai.models import GeneratorLogits
from endoxai.train.interrupt import StopRequest

log = logging.getLogger(__name__)

T = TypeVar("T")
ENV_WORLD, ENV_RANK, ENV_LOCAL_RANK = "WORLD_SIZE", "RANK", "LOCAL_RANK"  # set by torchrun
QUIET_LEVEL = logging.ERROR  # the endoxai loggers of ranks other than 0 show errors only
# How long a collective may wait: the other ranks wait this long for rank 0's validation and
# checkpoint writes (torch's default is 30 min for gloo but 10 min for NCCL).
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: ``rank`` of ``world`` processes, computing on ``device``.

    ``Distributed()`` is the single-process run (rank 0 of 1): no collectives, every helper a
    no-op. The helpers that communicate (``agreed_signal``, ``mean``, ``average_buffers``,
    ``from_main``, ``gather_rng_states``) are collectives: every rank must call them, in the
    same order.
    """

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} of {self.world} processes")

    @property
    def active(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes, validates and logs."""
        return self.rank == 0

    def local_batch_size(self, batch_size: int) -> int:
        """Samples per rank and step for the global ``batch_size``; UserError unless W divides it."""
        if batch_size % self.world:
            raise UserError(f"train.batch_size {batch_size} is the global batch: it must be a "
                            f"multiple of the {self.world} processes")
        return batch_size // self.world

    def split_batches(self, order: torch.Tensor, batch_size: int) -> Sequence[torch.Tensor]:
        """An epoch's global batches: ``order`` (a permutation, int64 (N,)) in chunks of
        ``batch_size``. With W > 1 a short last chunk is padded with ``order``'s first entries to
        a multiple of W, as DistributedSampler pads, so that every rank gets the same number of
        samples (no rank idles or computes BatchNorm of an empty batch)."""
        batches = order.split(batch_size)
        short = -len(batches[-1]) % self.world if batches else 0
        if not short:
            return batches
        fill = order.repeat(math.ceil(short / len(order)))[:short]  # N < W: repeat, as the sampler
        return (*batches[:-1], torch.cat([batches[-1], fill]))

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch (first dimension): ``batch[rank::world]``."""
        return batch[self.rank::self.world] if self.active else batch

    def wrap(self, g: nn.Module, d: nn.Module) -> tuple[Any, nn.Module]:
        """``(g, d)`` as ``train_step`` should receive them: the modules themselves in one
        process, else DDP views whose backward averages the gradients over the ranks. The
        modules stay the owners of the parameters (checkpoints, validation use them)."""
        if not self.active:
            return g, d
        from torch.nn.parallel import DistributedDataParallel as DDP

        # Buffers are averaged after each step (average_buffers) instead of broadcast from rank 0
        # before each forward; torch >= 2.13 renamed the switch.
        no_buffer_sync = ({"forward_sync_buffers": False}
                          if "forward_sync_buffers" in inspect.signature(DDP).parameters
                          else {"broadcast_buffers": False})
        ids = [self.device.index] if self.device.type == "cuda" else None
        return (_DDPGenerator(DDP(GeneratorLogits(g), device_ids=ids, **no_buffer_sync)),
                DDP(d, device_ids=ids, **no_buffer_sync))

    def split_rng(self) -> None:
        """Give every rank its own global-RNG stream (dropout masks) drawn from the shared one,
        so that ranks do not repeat each other's masks; identical calls on every rank keep the
        draws in step. No-op in one process."""
        if self.active:
            seeds = torch.randint(0, 2**62, (self.world,))
            torch.manual_seed(int(seeds[self.rank]))

    def gather_rng_states(self) -> list[torch.Tensor] | None:
        """Every rank's global RNG state (uint8 tensors, rank order), or None in one process."""
        if not self.active:
            return None
        import torch.distributed as dist

        mine = torch.get_rng_state().to(self.device)
        states = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(states, mine)
        return [s.cpu() for s in states]

    def restore_rng(self, rng: dict[str, Any]) -> None:
        """Set this rank's global RNG from a checkpoint's ``rng`` entry: its own stream when the
        checkpoint was written by as many processes, else one derived from rank 0's state (the
        run continues, but not exactly as it would have)."""
        per_rank = rng.get("torch_ranks")
        if self.active and per_rank is not None and len(per_rank) == self.world:
            torch.set_rng_state(per_rank[self.rank])
            return
        torch.set_rng_state(rng["torch"])
        self.split_rng()
        written_by = len(per_rank) if per_rank is not None else 1
        if written_by != self.world:
            log.warning("resuming with %d processes a run written by %d: training continues, "
                        "but not exactly as an uninterrupted run would", self.world, written_by)

    def agreed_signal(self, stop: StopRequest) -> int:
        """The SIGINT/SIGTERM number that any rank has received (the highest), 0 if none: the
        same on every rank, so that all stop after the same step and raise the same Interrupted.

        ``stop`` is left as it is: a rank that stops for another's signal still takes its own
        first signal (torchrun forwards one to every rank) as a first, not a second, signal."""
        if not self.active:
            return stop.signum or 0
        flag = torch.tensor([stop.signum or 0], device=self.device)
        _all_reduce(flag, "max")
        return int(flag.item())

    def mean(self, logs: dict[str, float]) -> dict[str, float]:
        """Step logs averaged over the ranks: the global batch's losses (shards are equal in
        size), identical on every rank; a NaN on one rank makes them NaN everywhere."""
        if not self.active:
            return logs
        values = torch.tensor(list(logs.values()), dtype=torch.float64, device=self.device)
        _all_reduce(values, "sum")
        return dict(zip(logs, (values / self.world).tolist()))

    def average_buffers(self, *modules: nn.Module) -> None:
        """Average the floating-point buffers (BatchNorm running statistics) over the ranks.

        The running mean is an exponential average of batch means, which is linear: the average
        over ranks equals the running mean of the global batch's mean. The running variance
        averages the per-rank variances (the spread between shards is not in it)."""
        if not self.active:
            return
        buffers = [b for m in modules for b in m.buffers() if b.is_floating_point()]
        if not buffers:
            return
        flat = torch.cat([b.reshape(-1) for b in buffers])
        _all_reduce(flat, "sum")
        flat /= self.world
        offset = 0
        for b in buffers:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()

    def from_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and give its result (a picklable value) to every rank; when it
        raises, every rank raises: UserError and Interrupted with rank 0's message, anything else
        as RuntimeError. The other ranks wait meanwhile (``fn`` must finish within ``TIMEOUT``)."""
        if not self.active:
            return fn()
        import torch.distributed as dist

        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except BaseException as err:  # the others must not wait forever for a result
                box[0] = ("error", _describe_error(err))
                dist.broadcast_object_list(box, src=0, device=self.device)
                raise
        dist.broadcast_object_list(box, src=0, device=self.device)
        kind, payload = box[0]
        if kind == "ok":
            return payload
        raise _rebuild_error(payload)


class _DDPGenerator:
    """What ``train_step`` receives as ``g`` with W > 1: ``logits(x)`` runs through DDP."""

    def __init__(self, replica: nn.Module) -> None:
        self.logits = replica


def _all_reduce(tensor: torch.Tensor, op: str) -> None:
    import torch.distributed as dist

    dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])


def _describe_error(err: BaseException) -> tuple[str, int, str]:
    if isinstance(err, Interrupted):
        return "interrupted", err.signum, str(err)
    if isinstance(err, UserError):
        return "user", 0, str(err)
    return "other", 0, f"rank 0 failed: {type(err).__name__}: {err}"


def _rebuild_error(payload: tuple[str, int, str]) -> BaseException:
    kind, signum, message = payload
    if kind == "interrupted":
        return Interrupted(signum, message)
    if kind == "user":
        return UserError(message)
    return RuntimeError(message)


def env_world() -> tuple[int, int, int]:
    """``(rank, world, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` outside it."""
    try:
        world = int(os.environ.get(ENV_WORLD, "1"))
        rank = int(os.environ.get(ENV_RANK, "0"))
        local = int(os.environ.get(ENV_LOCAL_RANK, "0"))
    except ValueError as err:
        raise UserError(f"invalid torchrun environment ({ENV_WORLD}, {ENV_RANK}, "
                        f"{ENV_LOCAL_RANK}): {err}") from err
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"invalid torchrun environment: {ENV_RANK}={rank}, {ENV_WORLD}={world}")
    return rank, world, local


def is_main_process() -> bool:
    """True unless this process is a rank other than 0 of a torchrun launch (for CLI output)."""
    return env_world()[0] == 0


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Distributed]:
    """Join torchrun's process group for the duration (``WORLD_SIZE`` > 1), else a no-op.

    ``device``: the resolved device; under torchrun ``cuda`` becomes ``cuda:LOCAL_RANK`` (one
    GPU per process, NCCL), ``cpu`` uses gloo. Yields the ``Distributed`` of this process; on
    exit the group is destroyed (unless it existed before: then its owner destroys it). The
    endoxai loggers of ranks other than 0 show errors only, meanwhile.
    """
    rank, world, local = env_world()
    if world == 1:
        yield Distributed(device=device)
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed: run without torchrun")
    if device.type == "cuda":
        if device.index is not None:
            raise UserError(f"--device {device} under torchrun: use --device cuda (each process "
                            "takes the GPU cuda:LOCAL_RANK)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    package = logging.getLogger("endoxai")
    level = package.level
    if rank != 0:
        package.setLevel(QUIET_LEVEL)
    try:
        if dist.get_world_size() != world or dist.get_rank() != rank:
            raise UserError(f"the process group ({dist.get_rank()} of {dist.get_world_size()}) "
                            f"does not match torchrun's environment ({rank} of {world})")
        yield Distributed(rank, world, device)
    finally:
        package.setLevel(level)
        if owned:
            dist.destroy_process_group()
