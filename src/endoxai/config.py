"""Frozen configuration dataclasses, TOML recipes and their validation."""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from endoxai.errors import UserError

SEG_LOSSES = ("none", "dice", "bce", "dice+bce")
LR_SCHEDULES = ("constant", "linear")
CRITIC_INPUTS = ("tanh", "sign")
PRECISIONS = ("fp32", "bf16", "auto")  # training
INFERENCE_PRECISIONS = ("fp32", "bf16", "fp16", "auto")  # fp16: CUDA only


_TYPES = {"bool": (bool, "true or false"), "int": (int, "an integer"),
          "float": ((int, float), "a finite number"), "str": (str, "a string")}
MAX_IMAGE_SIZE = 4096  # a larger model input does not fit in memory on any current machine
MAX_SEED = 2**63 - 1  # torch.manual_seed's range for non-negative seeds


def _check_types(config: Any, section: str) -> None:
    """Every field holds its annotated type (TOML and checkpoints give untyped values); bool is
    not accepted as a number, floats must be finite."""
    for f in dataclasses.fields(config):
        if f.type not in _TYPES:
            continue
        allowed, what = _TYPES[f.type]
        value = getattr(config, f.name)
        ok = isinstance(value, allowed) and (f.type == "bool" or not isinstance(value, bool))
        if ok and f.type == "float":
            ok = math.isfinite(value)
        if not ok:
            raise ValueError(f"{section}.{f.name} must be {what}; got {value!r}")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}]; got {value!r}")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; the same geometric draw is applied to image and mask."""

    enabled: bool = True
    hflip: float = 0.5  # probability
    vflip: float = 0.5  # probability
    rot90: bool = True  # uniform over 0/90/180/270 degrees
    scale: float = 0.1  # zoom factor drawn from [1 - scale, 1 + scale]
    shift: float = 0.1  # translation drawn from [-shift, shift] of the image size
    brightness: float = 0.2  # additive, in units of the [0, 1] intensity range
    contrast: float = 0.2  # multiplicative factor drawn from [1 - c, 1 + c]
    saturation: float = 0.2  # multiplicative factor drawn from [1 - s, 1 + s]

    def __post_init__(self) -> None:
        _check_types(self, "data.augment")
        for name in ("hflip", "vflip"):
            _check_range(f"augment.{name}", getattr(self, name), 0.0, 1.0)
        for name in ("scale", "shift", "brightness", "contrast", "saturation"):
            _check_range(f"augment.{name}", getattr(self, name), 0.0, 0.9)


@dataclass(frozen=True)
class DataConfig:
    image_size: int = 256  # square model input; must be a multiple of 256 (8 stride-2 stages)
    val_fraction: float = 0.12  # seeded split when a dataset has no official one (Medico: 120/1000)
    # > 0: that many training images (seeded) become the validation set that picks the best epoch,
    # and the dataset's validation images become a test set that training never looks at.
    holdout: int = 0
    # true: each training image is paired with another image's mask (a seeded derangement), so
    # the model can learn no real image-mask relation: the data-randomisation sanity check
    shuffle_masks: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        _check_types(self, "data")
        if self.image_size <= 0 or self.image_size % 256 or self.image_size > MAX_IMAGE_SIZE:
            raise ValueError(f"data.image_size must be a positive multiple of 256, at most "
                             f"{MAX_IMAGE_SIZE}; got {self.image_size}")
        _check_range("data.val_fraction", self.val_fraction, 0.01, 0.9)
        if self.holdout < 0:
            raise ValueError(f"data.holdout must be >= 0; got {self.holdout}")


@dataclass(frozen=True)
class ModelConfig:
    """Table 1 of Ahmed & Ali (2021); defaults are the paper's generator and discriminator."""

    in_channels: int = 3
    out_channels: int = 1
    dropout: float = 0.5  # in the first three decoder blocks, pix2pix default
    width: int = 64  # channels of the first block (pix2pix's ngf / ndf); 64 = Table 1

    def __post_init__(self) -> None:
        _check_types(self, "model")
        _check_range("model.dropout", self.dropout, 0.0, 0.99)
        if self.width < 8 or self.width % 8 or self.width > 1024:
            raise ValueError(f"model.width must be a multiple of 8 in [8, 1024]; got {self.width}")
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError("model.in_channels and model.out_channels must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 8
    lr_g: float = 2e-4  # pix2pix default
    lr_d: float = 2e-4  # pix2pix default
    beta1: float = 0.5  # pix2pix default
    beta2: float = 0.999  # pix2pix default
    l1_weight: float = 100.0  # lambda of pix2pix
    seg_loss: str = "none"  # extra segmentation term on the logit: none | dice | bce | dice+bce
    seg_weight: float = 1.0
    lr_schedule: str = "constant"  # constant | linear (pix2pix: linear decay towards 0 at the end)
    decay_fraction: float = 0.5  # linear: share of the epochs (the last ones) over which lr decays
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 autocast where the CPU/GPU supports it)
    num_threads: int = 0  # torch intra-op threads; 0 = torch default
    save_every: int = 1  # last.pt every N epochs (and at the end, on a signal); best.pt always
    fit_images: int = 64  # eval-mode Dice of the first N training images per epoch (0: off)
    ema_decay: float = 0.0  # > 0: validate and save a moving average of G's weights (train.ema)
    critic_input: str = "tanh"  # what D sees of G(x): tanh (pix2pix) | sign (train.steps)

    def __post_init__(self) -> None:
        _check_types(self, "train")
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1; got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1; got {self.batch_size}")
        for name in ("lr_g", "lr_d"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be in (0, 1); got {getattr(self, name)}")
        _check_range("train.beta1", self.beta1, 0.0, 0.9999)
        _check_range("train.beta2", self.beta2, 0.0, 0.9999)
        if self.l1_weight < 0 or self.seg_weight < 0:
            raise ValueError("train.l1_weight and train.seg_weight must be >= 0")
        _check_choice("train.seg_loss", self.seg_loss, SEG_LOSSES)
        _check_choice("train.critic_input", self.critic_input, CRITIC_INPUTS)
        _check_choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("train.precision", self.precision, PRECISIONS)
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"train.decay_fraction must be in (0, 1]; got {self.decay_fraction}")
        if self.num_threads < 0:
            raise ValueError("train.num_threads must be >= 0")
        if self.save_every < 1:
            raise ValueError(f"train.save_every must be >= 1; got {self.save_every}")
        if self.fit_images < 0:
            raise ValueError(f"train.fit_images must be >= 0; got {self.fit_images}")
        _check_range("train.ema_decay", self.ema_decay, 0.0, 0.99999)
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"train.seed must be in [0, 2**63 - 1]; got {self.seed}")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Config":
        """Build from nested plain dicts (a TOML file or a checkpoint); unknown keys are errors."""
        return _build(cls, raw, "")

    def to_toml(self) -> str:
        """The config as a TOML document that ``load_config`` reads back to an equal Config."""
        lines: list[str] = []
        _toml_table(self.to_dict(), [], lines)
        return "\n".join(lines).lstrip("\n") + "\n"

    def override(self, **sections: Mapping[str, Any]) -> "Config":
        """Return a copy with e.g. ``override(train={"epochs": 3})`` applied (None values ignored)."""
        merged = self.to_dict()
        for section, values in sections.items():
            for key, value in values.items():
                if value is not None:
                    _set_path(merged, section, key, value)
        return Config.from_dict(merged)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    if path and scalars:
        lines.append(f"\n[{'.'.join(path)}]")
    lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
    for key, value in table.items():
        if isinstance(value, Mapping):
            _toml_table(value, [*path, key], lines)


def _set_path(tree: dict, section: str, key: str, value: Any) -> None:
    node = tree[section]
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{prefix.rstrip('.') or 'config'} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
            f"allowed in [{prefix.rstrip('.') or 'top level'}]: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in raw.items():
        ftype = fields[name].type
        sub = _SUBCONFIGS.get(ftype if isinstance(ftype, str) else ftype.__name__)
        kwargs[name] = _build(sub, value, f"{prefix}{name}.") if sub else value
    return cls(**kwargs)


_SUBCONFIGS = {
    "AugmentConfig": AugmentConfig,
    "DataConfig": DataConfig,
    "ModelConfig": ModelConfig,
    "TrainConfig": TrainConfig,
}


def recipe_names() -> list[str]:
    """Names of the recipes shipped in ``endoxai/recipes``."""
    files = resources.files("endoxai") / "recipes"
    return sorted(p.name[: -len(".toml")] for p in files.iterdir() if p.name.endswith(".toml"))


def load_config(source: str | Path | None = None) -> Config:
    """Load a recipe by name (``paper``, ``default``) or from a TOML file path; None = ``default``.

    Raises UserError with the reason for a missing file, bad TOML or an invalid value.
    """
    source = "default" if source is None else source
    path = Path(source)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    elif str(source) in recipe_names():
        res = resources.files("endoxai") / "recipes" / f"{source}.toml"
        text, origin = res.read_text(encoding="utf-8"), f"recipe {source!r}"
    else:
        raise UserError(
            f"unknown recipe {str(source)!r}: give a .toml path or one of {', '.join(recipe_names())}"
        )
    try:
        return Config.from_dict(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError, TypeError) as err:
        raise UserError(f"invalid config in {origin}: {err}") from err
