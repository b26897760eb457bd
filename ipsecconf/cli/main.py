"""The ``ipsecconf`` command: validate, plan, apply, show, export, engine, bench.

This is the only layer that prints.  Exit codes: 0 success, 1 any error (usage errors
included), 2 "changes present" with ``plan --detailed-exitcode``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ipsecconf import __version__
from ipsecconf.cli import validate_cmd
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    validate_cmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
