"""Command line: `python -m combgrad demo [--epochs N] [--out DIR]`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m combgrad",
        description="combgrad: differentiable combinatorial optimization on PyTorch.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import demo

    demo.build_parser(
        commands.add_parser(
            "demo",
            help="train a CNN from unordered label bags with MatchingLoss and baselines",
            description=demo.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    demo.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
