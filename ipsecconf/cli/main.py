"""The ``ipsecconf`` command: validate, plan, apply, show, export, engine, bench.

This is the only layer that prints.  Exit codes: 0 success, 1 any error (usage errors
included), 2 "changes present" with ``plan --detailed-exitcode``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ipsecconf import __version__
from ipsecconf.cli import apply_cmd, bench, engine_cmd, plan_cmd, show_cmd, validate_cmd
from ipsecconf.cli.args import EXIT_ERROR, Parser, add_state_option
from ipsecconf.cli.output import print_diagnostics
from ipsecconf.errors import ConfigError, IpsecconfError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = Parser(
        prog="ipsecconf",
        description="Declarative IPsec: validate, plan and apply SPD/SAD state from YAML.",
    )
    parser.add_argument("--version", action="version", version=f"ipsecconf {__version__}")
    add_state_option(parser)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what happens to stderr (-v info, -vv debug); never secret values",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    validate_cmd.register(sub)
    plan_cmd.register(sub)
    apply_cmd.register(sub)
    show_cmd.register(sub)
    engine_cmd.register(sub)
    bench.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            stream=sys.stderr,
        )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print_diagnostics(exc.diagnostics)
        return EXIT_ERROR
    except IpsecconfError as exc:
        sys.stderr.write(f"ipsecconf: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("ipsecconf: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
