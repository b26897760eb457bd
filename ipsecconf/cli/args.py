"""argparse set-up shared by ``ipsecconf`` and ``ipsec``: usage errors exit 1, never 2.

Exit code 2 is reserved for "changes present" (``plan --detailed-exitcode``), as in
Terraform, so argparse's own exit status for a bad command line is replaced.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with status 1."""

    def report(self, message: str) -> int:
        """Print this command's usage line and a one-line reason; the exit status.

        The one path for wrong input: argparse's own errors and the checks the commands
        make after parsing print alike.
        """
        self.print_usage(sys.stderr)
        reason = "; ".join(line.strip() for line in message.splitlines() if line.strip())
        sys.stderr.write(f"{self.prog}: error: {reason}\n")
        return EXIT_ERROR

    def error(self, message: str) -> NoReturn:
        self.exit(self.report(message))


def add_state_option(parser: argparse.ArgumentParser) -> None:
    """The global ``--state PATH`` option (else IPSECCONF_STATE, else the default)."""
    parser.add_argument(
        "--state",
        metavar="PATH",
        help="state database (default: $IPSECCONF_STATE, else /var/lib/ipsecconf/state.db "
        "for root or ~/.local/state/ipsecconf/state.db)",
    )


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """PATH... plus the template variable options."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or directories")
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template variable (repeatable; overrides --vars-file and vars:)",
    )
    parser.add_argument(
        "--vars-file",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML mapping of template variables (repeatable)",
    )
