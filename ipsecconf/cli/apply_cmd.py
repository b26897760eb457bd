"""``ipsecconf apply`` (configuration or saved plan) and ``ipsecconf force-unlock``.

Apply takes the state lock first and plans under it, so two concurrent applies never
interleave: the second waits (``--lock-timeout``) and then plans against what the first
left.  On a terminal it asks for confirmation; without one it needs ``--auto-approve``
or a saved plan (which is applied as saved, or refused if anything moved).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ipsecconf.cli.args import EXIT_ERROR, EXIT_OK
from ipsecconf.cli.output import print_diagnostics, use_colour
from ipsecconf.cli.progress import CliHooks
from ipsecconf.cli.state_args import add_local_state_option, inputs, service
from ipsecconf.engine.service import Planned
from ipsecconf.errors import UsageError
from ipsecconf.plan import planfile, render_text

log = logging.getLogger("ipsecconf.apply")
DEFAULT_LOCK_TIMEOUT = 30.0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``apply`` and ``force-unlock``."""
    p = sub.add_parser(
        "apply",
        help="apply the configuration (or a saved plan) to the node",
        description="Plan and apply in one transaction (all or nothing). Without a "
        "terminal, needs --auto-approve or a saved plan.",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="YAML files/directories, or one saved plan"
    )
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--vars-file", action="append", default=[], metavar="FILE")
    add_local_state_option(p)
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("--prune", action="store_true", help="also delete unmanaged entries")
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help=f"wait this long for another apply to finish (default {DEFAULT_LOCK_TIMEOUT:g})",
    )
    p.set_defaults(func=run_apply)
    u = sub.add_parser(
        "force-unlock",
        help="remove a lock left by an apply that can no longer release it",
    )
    u.add_argument("lock_id", metavar="ID", help="the lock ID the error message names")
    add_local_state_option(u)
    u.set_defaults(func=run_force_unlock)


def _confirm() -> bool:
    sys.stdout.write(
        "\nDo you want to perform these actions?\n"
        "  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    )
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    return answer == "yes"


def run_apply(args: argparse.Namespace) -> int:
    saved_path = (
        args.paths[0] if len(args.paths) == 1 and planfile.is_planfile(args.paths[0]) else None
    )
    if saved_path is None and any(planfile.is_planfile(p) for p in args.paths):
        raise UsageError("a saved plan is applied on its own: ipsecconf apply PLANFILE")
    if saved_path is None and not args.auto_approve and not sys.stdin.isatty():
        raise UsageError(
            "apply needs --auto-approve or a saved plan (ipsecconf plan --out FILE) when "
            "not run on a terminal"
        )
    if saved_path is not None and (args.var or args.vars_file or args.prune):
        raise UsageError("a saved plan carries its own inputs; drop --var/--vars-file/--prune")
    saved = planfile.read(saved_path) if saved_path else None
    svc = service(args)
    hooks = CliHooks()
    command = "apply " + (saved_path or " ".join(args.paths))
    try:
        with svc.backend.lock(args.lock_timeout, f"ipsecconf {command}"):
            planned: Planned = (
                svc.replan_saved(saved) if saved is not None else svc.plan(inputs(args))
            )
            print_diagnostics(planned.load.warnings)
            sys.stdout.write(render_text.render(planned.plan, colour=use_colour(sys.stdout)))
            if not planned.plan.has_changes:
                sys.stdout.write("\nApply complete: nothing to do.\n")
                return EXIT_OK
            if saved is None and not args.auto_approve and not _confirm():
                sys.stdout.write("\nApply cancelled.\n")
                return EXIT_ERROR
            sys.stdout.flush()
            log.debug("applying %d changes", len(planned.plan.changes))
            outcome = svc.apply(planned, hooks, command=command)
    finally:
        hooks.close()
        svc.backend.close()
    sys.stdout.write(
        f"\nApply complete! {outcome.summary}; {outcome.sas_torn_down} SAs torn down. "
        f"State serial {outcome.serial}.\n"
    )
    return EXIT_OK


def run_force_unlock(args: argparse.Namespace) -> int:
    svc = service(args, create=False)
    try:
        sys.stdout.write(svc.backend.force_unlock(args.lock_id) + "\n")
    finally:
        svc.backend.close()
    return EXIT_OK
