"""``build_report``: compute a run's numbers (``report.numbers``), then write the page
(``report.render``, its sections in ``report.sections``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from endoxai.data import SPLIT_FILE
from endoxai.errors import UserError
from endoxai.explain import COMPOSITES, DEFAULT_COMPOSITE
from endoxai.explain.faithfulness_files import JSON_NAME
from endoxai.explain.sanity_files import JSON_NAME as SANITY_JSON
from endoxai.report.numbers import compute_numbers
from endoxai.report.pictures import Pictures
from endoxai.report.render import render_page


@dataclass
class ReportSummary:
    """What ``build_report`` wrote: the page, how many validation images it scored and showed,
    the scores (``endoxai.metrics.summarize`` of the validation set) and any skipped pairs."""

    path: Path
    n_images: int
    n_gallery: int
    metrics: dict[str, dict[str, float | int]]
    failures: list[str] = field(default_factory=list)
    faithfulness: Path | None = None
    sanity: Path | None = None


def build_report(
    run_dir: str | Path | None,
    output_dir: str | Path,
    data: str | Path | None = None,
    max_images: int = 24,
    faithfulness: str | Path | None = None,
    composite: str = DEFAULT_COMPOSITE,
    batch_size: int = 4,
    progress: bool | None = None,
    precision: str = "auto",
    checkpoint: str | Path | None = None,
) -> ReportSummary:
    """Write ``output_dir/index.html`` and its images in ``output_dir/img/`` for the run in
    ``run_dir`` (``best.pt``, ``split.json``, ``history.csv``; see ``report.numbers``), or,
    with ``run_dir`` None, for the model in ``checkpoint`` (a file ``load_generator`` reads, e.g.
    ``endoxai.weights.resolve_model()``) on the validation list of ``data``, without curves.

    ``data``: the dataset (default: the path recorded in ``split.json``). ``max_images``: gallery
    size, the validation images with the lowest Dice first (0: no gallery). ``faithfulness``: a
    folder or ``faithfulness.json`` from ``endoxai evaluate-explanations`` (default:
    ``run_dir/faithfulness`` if it exists); the sanity checks' ``sanity.json`` is read from the
    same folder when it is there. ``composite``: LRP rules of the gallery heatmaps.
    ``progress``: tqdm bars (None: only on a terminal). ``precision``: of the validation
    predictions, as for ``endoxai predict`` (so the report's metrics equal predict + evaluate).
    UserError for a missing run file, dataset or faithfulness file, an unknown composite or a bad
    number.
    """
    split_file = None
    if run_dir is not None:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise UserError(f"run folder not found: {run_dir}")
        split_file = run_dir / SPLIT_FILE
        if not split_file.is_file():
            raise UserError(f"{split_file} not found: the report scores the run's validation "
                            "split")
        checkpoint = run_dir / "best.pt"
    elif checkpoint is None or data is None:
        raise UserError("without a run folder the report needs a model and --data (the dataset "
                        "whose validation images it scores)")
    if max_images < 0 or batch_size < 1:
        raise UserError("--max-images must be >= 0 and --batch-size >= 1")
    if composite not in COMPOSITES:
        raise UserError(f"unknown composite {composite!r}; choose from {', '.join(COMPOSITES)}")
    faith_file = faithfulness_file(run_dir, faithfulness)
    sanity = sanity_file(run_dir, faith_file)
    pictures = Pictures(Path(output_dir))
    pictures.make_folder()  # before the long computation: an unwritable output fails at once
    numbers = compute_numbers(Path(checkpoint), data, split_file, run_dir, max_images, faith_file,
                              composite, batch_size, progress, precision, sanity)
    path = render_page(numbers, pictures)
    return ReportSummary(path, len(numbers.stems), len(numbers.gallery), numbers.metrics,
                         numbers.failures, faith_file, sanity)


def faithfulness_file(run_dir: Path | None, given: str | Path | None) -> Path | None:
    """The faithfulness.json to show: ``given`` (a file or folder; UserError if missing), else
    ``run_dir/faithfulness/faithfulness.json`` when it exists, else None."""
    if given is not None:
        path = Path(given)
        path = path / JSON_NAME if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"faithfulness results not found: {path}")
        return path
    if run_dir is None:
        return None
    default = run_dir / "faithfulness" / JSON_NAME
    return default if default.is_file() else None


def sanity_file(run_dir: Path | None, faith_file: Path | None) -> Path | None:
    """The sanity.json to show: beside the faithfulness file if there is one there, else
    ``run_dir/faithfulness/sanity.json`` when it exists, else None."""
    folders = [faith_file.parent] if faith_file is not None else []
    if run_dir is not None:
        folders.append(run_dir / "faithfulness")
    return next((f / SANITY_JSON for f in folders if (f / SANITY_JSON).is_file()), None)
