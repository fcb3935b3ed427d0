"""`endoxai view`: a local web page to ask the model, pixel by pixel, why it drew its mask."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Serve a local web page (no internet needed, nothing leaves the machine) that shows each image
with the model's mask and explains it on demand: click a pixel for the relevance of that pixel's
logit, drag a box for the box, or ask for the whole mask or the background. The answer is the
LRP relevance of every input pixel (red = evidence for foreground, blue = against, on a
symmetric scale printed under the map) and of every block (down1..up8).

With --masks, each image shows true positives, false positives and false negatives, its Dice and
Jaccard (MedAI protocol, at the image's own size), and the gallery is sorted worst Dice first.
JPEG / PNG files can also be dropped onto the page (at most 20 MB and 40 million pixels each).

The server listens on 127.0.0.1 (this machine only) unless --host says otherwise; it has no
authentication, so binding another address prints a warning. Ctrl-C stops it.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from endoxai.cli.model_args import add_model_arguments
    from endoxai.view import DEFAULT_HOST, DEFAULT_PORT

    p = sub.add_parser(
        "view",
        help="local web page: click a pixel, see which input pixels and layers made the mask",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument("--images", nargs="+", default=[], metavar="IMG_OR_FOLDER",
                   help="image files and / or folders of images for the gallery (default: none; "
                        "upload images in the page)")
    p.add_argument("--masks", metavar="DIR",
                   help="folder of truth masks, paired with the images by file stem")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="port (default: %(default)s; 0 picks a free one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from endoxai.view.server import launch

    def ready(url: str) -> None:
        print(f"endoxai view: open {url} in a browser (Ctrl-C stops)", file=sys.stderr,
              flush=True)

    launch(checkpoint=args.checkpoint, model=args.model, images=args.images, masks=args.masks,
           host=args.host, port=args.port, progress=not args.quiet, on_ready=ready)
    return 0
