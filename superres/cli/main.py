"""``superres`` entry point: one sub-command per capability, each in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from superres import __version__
from superres.cli import bench as bench_cmd
from superres.cli import eval as eval_cmd
from superres.cli import export as export_cmd
from superres.cli import models as models_cmd
from superres.cli import restore as restore_cmd
from superres.cli import train as train_cmd
from superres.cli import upscale as upscale_cmd
from superres.cli import video as video_cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="superres",
        description="Upscale images with real pretrained super-resolution models, offline.",
    )
    parser.add_argument("--version", action="version", version=f"superres {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    upscale_cmd.add_parser(sub)
    video_cmd.add_parser(sub)
    models_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    restore_cmd.add_parser(sub)
    export_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
