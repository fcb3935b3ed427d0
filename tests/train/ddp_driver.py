"""Run ``fit`` in one process of a torchrun launch and keep this rank's final weights.

Launched by tests/train/test_distributed.py as
``python -m torch.distributed.run --standalone --nproc_per_node=W ddp_driver.py CONFIG DATA OUT``.
It calls the real ``fit`` (which joins the process group from torchrun's environment) and
then writes ``OUT/rank{r}.pt``: this rank's generator and discriminator state dicts and the
history ``fit`` returned, so that the test can compare the ranks with each other and with a
single-process reference. Only ``build_models`` is wrapped, to get hold of the models.
"""

import os
import sys
from pathlib import Path

import torch

from endoxai.config import load_config
from endoxai.train import loop


def main(config: str, data: str, out: str) -> None:
    models = {}
    build = loop.build_models

    def capture(model_cfg):
        models["g"], models["d"] = build(model_cfg)
        return models["g"], models["d"]

    loop.build_models = capture
    result = loop.fit(load_config(config), data, Path(out) / "run", progress=False)
    rank = int(os.environ["RANK"])
    torch.save({"generator": models["g"].state_dict(), "discriminator": models["d"].state_dict(),
                "history": result.history}, Path(out) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
