"""`endoxai evaluate-explanations`: region perturbation (MoRF/LeRF, AOPC) and localisation scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from endoxai.cli.model_args import add_model_arguments, model_path

DESCRIPTION = """\
Measure whether explanations tell the truth (Samek et al. 2017 region perturbation). On each
validation image the explained score is the sum of the logits over the predicted mask; the
image is cut into patches (1/32 of the side: 8 px at 256x256, 16 px at 512x512), which are
replaced step by step by a baseline, most relevant first (MoRF) and least relevant first (LeRF),
in the order each method ranks them. AOPC = mean drop over the steps of the mean logit over the
predicted mask (in logits): higher MoRF AOPC and lower LeRF AOPC are better. Localisation against
the ground truth: relevance mass accuracy (share of positive relevance inside the mask) and the
pointing game (is the most relevant pixel inside?).

Methods: every LRP composite (lrp:NAME), gradient (L2 norm over RGB), gradient-x-input,
integrated-gradients (black baseline = -1 in model input space) and random order.

Images: with --run, RUN/best.pt and the 'val' ids of RUN/split.json (dataset from --data or the
path recorded in split.json); with --checkpoint or --model (or neither: the bundled model), the
validation list of --data (all pairs if it has none). The first N ids (sorted) with a non-empty
prediction are used.

Writes into OUTPUT (default RUN/faithfulness, where `endoxai report` finds it):
faithfulness.json, faithfulness_per_image.csv, faithfulness_curves.png; prints a table.

--sanity also runs the randomisation sanity checks (Adebayo et al. 2018) on the same images: the
generator's blocks are randomised from the output inward (up8, up7, ... down1, cumulatively) and
the encoder, decoder and skip-reading weights each on their own; each method's maps are compared
with the trained model's by Spearman rank correlation of |R|, the same correlation beyond what
each pixel's distance to the target predicts (partial rho: a U-Net's relevance stays near its
target whatever the weights) and SSIM (mean over images, 95 % bootstrap interval). A map that
stays similar did not depend on the randomised weights. --data-random adds a model trained on
shuffled masks. Writes sanity.json, sanity_per_image.csv and sanity.png next to the faithfulness
files and prints a table. --sanity-only skips the region perturbation.

--search-composites scores a grid of layer-dependent LRP composites (input: z^B, flat or w²;
encoder: γ, z+ or ε; decoder: γ, z+, ε of three sizes or ε by depth) beside the registered ones
and the gradient baselines, by the region perturbation and the decoder-only randomisation, and
chooses the highest MoRF AOPC among those with a flat LeRF curve and maps that change with the
decoder (endoxai.explain.composite_search). Run it on a run's held-out training images (--run
with a run trained with data.holdout), never on images you report on. Writes
composite_search.json and composite_search.md.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from endoxai.cli import choices
    from endoxai.config import PRECISIONS

    p = sub.add_parser(
        "evaluate-explanations",
        help="faithfulness of explanations: region perturbation AOPC, relevance mass, pointing game",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--run", type=Path, metavar="RUN",
                        help="a training run folder (uses best.pt and split.json)")
    add_model_arguments(source)
    p.add_argument("--data", type=Path, metavar="D",
                   help="dataset folder or archive (default with --run: the one in split.json)")
    p.add_argument("--output", type=Path, metavar="DIR",
                   help="folder for the results (default with --run: RUN/faithfulness)")
    p.add_argument("--n-images", type=int, default=4, metavar="N",
                   help="validation images to evaluate (default: %(default)s)")
    p.add_argument("--steps", type=int, default=choices.PERTURBATION_STEPS, metavar="K",
                   help="perturbation steps (default: %(default)s)")
    p.add_argument("--fraction", type=float, default=choices.PERTURBATION_FRACTION, metavar="F",
                   help="share of the image perturbed at the last step (default: %(default)s)")
    p.add_argument("--patch", type=int, metavar="PX",
                   help="patch side in pixels (default: image size / 32)")
    p.add_argument("--baseline", default="noise", choices=choices.BASELINES,
                   help="what perturbed patches become: uniform noise (default, as Samek et al.; "
                        "the only one that removed evidence from our Kvasir-SEG model at every "
                        "stage of training), a blurred copy (Gaussian, sigma = 2 patches), the "
                        "image's mean colour, or black")
    p.add_argument("--methods", default="all", metavar="M[,M...]",
                   help=f"comma-separated subset of: {', '.join(choices.method_names())} "
                        "(default: all)")
    p.add_argument("--ig-steps", type=int, metavar="N",
                   help=f"integrated-gradients steps (default: {choices.IG_STEPS}; "
                        f"{choices.SANITY_IG_STEPS} in the sanity checks, which compute every "
                        "map once per randomised model)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="perturbed copies per forward pass (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random order and noise (default: 0)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="of the perturbation forward passes; auto = bf16 where the CPU/GPU runs "
                        "it natively (default: %(default)s)")
    p.add_argument("--device", default="auto", metavar="DEV",
                   help="auto (CUDA if available), cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--sanity", action="store_true",
                   help="also run the randomisation sanity checks (see above)")
    p.add_argument("--sanity-only", action="store_true",
                   help="run only the sanity checks, not the region perturbation")
    p.add_argument("--data-random", type=Path, metavar="PATH",
                   help="with --sanity: also compare with this model (a checkpoint, or a run "
                        "folder: its best.pt), the same architecture trained on shuffled masks "
                        "(a recipe with data.shuffle_masks = true)")
    p.add_argument("--search-composites", action="store_true",
                   help="score the grid of candidate composites and choose one (see above); "
                        "nothing else is run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (also with -q)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from endoxai.errors import UserError
    from endoxai.explain import faithfulness_files as ff
    from endoxai.explain import sanity_files as sf
    from endoxai.explain.faithfulness import FaithfulnessSettings
    from endoxai.explain.methods import IG_STEPS, RANDOM, method_names
    from endoxai.explain.sanity import SANITY_IG_STEPS, SanitySettings, default_methods
    from endoxai.runtime import resolve_device

    every = args.methods.strip() == "all"
    methods = method_names() if every else [
        m.strip() for m in args.methods.split(",") if m.strip()]
    perturbation, sanity = not args.sanity_only, args.sanity or args.sanity_only
    if args.data_random is not None and not sanity:
        raise UserError("--data-random is part of the sanity checks: add --sanity")
    try:
        settings = FaithfulnessSettings(
            methods=tuple(methods), patch=args.patch, steps=args.steps, fraction=args.fraction,
            baseline=args.baseline, ig_steps=args.ig_steps or IG_STEPS,
            batch_size=args.batch_size, seed=args.seed, precision=args.precision)
        checks = SanitySettings(
            methods=default_methods() if every else tuple(m for m in methods if m != RANDOM),
            ig_steps=args.ig_steps or SANITY_IG_STEPS, batch_size=args.batch_size,
            seed=args.seed) if sanity else None
    except KeyError as err:
        raise UserError(err.args[0]) from err
    except ValueError as err:
        raise UserError(str(err)) from err
    if args.run is not None:
        if not args.run.is_dir():
            raise UserError(f"run folder not found: {args.run}")
        checkpoint, split_file = args.run / "best.pt", args.run / "split.json"
        output = args.output or args.run / "faithfulness"
    else:
        given = "--checkpoint" if args.checkpoint is not None else "the bundled model (no --run)"
        if args.data is None:
            raise UserError(f"{given} needs --data (the dataset to evaluate on)")
        if args.output is None:
            raise UserError(f"{given} needs --output (where to write the results)")
        checkpoint, split_file, output = model_path(args), None, args.output
    progress = not (args.quiet or args.no_progress)
    device = resolve_device(args.device)
    # what every driver below is given besides its settings
    common = dict(split_file=split_file, n_images=args.n_images, progress=progress, device=device)
    if args.search_composites:
        from endoxai.explain import composite_search as cs

        found, paths = cs.search_composites_files(
            checkpoint, args.data, output, settings=settings, **common)
        print(cs.format_search_table(found))
        print(f"wrote {paths['json']}, {paths['md'].name}")
        return 0
    if perturbation:
        result, paths = ff.evaluate_explanation_files(
            checkpoint, args.data, output, settings=settings, **common)
        print(ff.format_table(result))
        print(f"wrote {paths['json']}, {paths['csv'].name}, {paths['png'].name}")
    if checks is not None:
        checked, paths = sf.evaluate_sanity_files(
            checkpoint, args.data, output, settings=checks, data_random=args.data_random,
            **common)
        print(sf.format_sanity_table(checked))
        print(f"wrote {paths['json']}, {paths['csv'].name}, {paths['png'].name}")
    return 0
