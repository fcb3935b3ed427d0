"""Run the endoxai CLI with conftest's tiny models in one torchrun process; record its exit code.

Launched by tests/train/test_distributed.py as
``python -m torch.distributed.run --standalone --nproc_per_node=W ddp_cli.py train ...``.
``ENDOXAI_TEST_RUNNER`` names conftest's runner script (tiny models, optional trace and delay),
which this script runs; this rank's exit code is written to ``ENDOXAI_TEST_EXIT_DIR/exit{RANK}``
(torchrun itself reports only its own). With ``ENDOXAI_TEST_POISON="RANK:STEP"`` the
discriminator of that rank gets NaN weights just before its global step STEP (1-based).
"""

import os
import runpy
import sys
from pathlib import Path

from endoxai.train import loop

RANK = os.environ["RANK"]


def poison(rank: str, at: int) -> None:
    real = loop.train_step  # the runner wraps whatever is here when it starts
    count = {"n": 0}

    def step(g, d, *args, **kwargs):
        count["n"] += 1
        if rank == RANK and count["n"] == at:
            for p in d.parameters():
                p.data.fill_(float("nan"))
        return real(g, d, *args, **kwargs)

    loop.train_step = step


if __name__ == "__main__":
    if os.environ.get("ENDOXAI_TEST_POISON"):
        poison_rank, poison_step = os.environ["ENDOXAI_TEST_POISON"].split(":")
        poison(poison_rank, int(poison_step))
    runner = os.environ["ENDOXAI_TEST_RUNNER"]
    sys.argv = [runner, *sys.argv[1:]]
    try:
        runpy.run_path(runner, run_name="__main__")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    (Path(os.environ["ENDOXAI_TEST_EXIT_DIR"]) / f"exit{RANK}").write_text(str(code))
    raise SystemExit(code)
