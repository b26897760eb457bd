"""The ``ipsecconf`` command: validate, plan, apply, show, export, engine, bench.

This is the only layer that prints.  Exit codes: 0 success, 1 any error (usage errors
included), 2 "changes present" with ``plan --detailed-exitcode``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ipsecconf import __version__
from ipsecconf.cli.args import EXIT_ERROR, Parser, add_state_option
from ipsecconf.cli.output import print_diagnostics
from ipsecconf.errors import ConfigError, IpsecconfError

# Command -> the module that registers it.  Only the module of the command being run is
# imported: ``validate`` must not pay for the engine, IKE and plan layers at start-up
# (about half a second on this hardware); ``--help`` and unknown commands load them all.
COMMANDS = {
    "validate": "validate_cmd",
    "schema": "validate_cmd",
    "plan": "plan_cmd",
    "apply": "apply_cmd",
    "force-unlock": "apply_cmd",
    "show": "show_cmd",
    "export": "show_cmd",
    "engine": "engine_cmd",
    "bench": "bench",
}
_VALUE_OPTIONS = ("--state",)


def _command_of(argv: Sequence[str]) -> str | None:
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _VALUE_OPTIONS:
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``argv``, only the command it names is loaded."""
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
    wanted = COMMANDS.get(_command_of(argv) or "") if argv is not None else None
    for module in dict.fromkeys([wanted] if wanted else COMMANDS.values()):
        importlib.import_module(f"ipsecconf.cli.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
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
