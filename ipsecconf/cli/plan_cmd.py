"""``ipsecconf plan``: what apply would change, as text, JSON or a saved plan file."""

from __future__ import annotations

import argparse
import logging
import sys

from ipsecconf.cli.args import EXIT_CHANGES, EXIT_OK, add_input_options
from ipsecconf.cli.output import print_diagnostics, print_json, use_colour
from ipsecconf.cli.state_args import add_local_state_option, inputs, service
from ipsecconf.plan import render_json, render_text

log = logging.getLogger("ipsecconf.plan")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``plan``."""
    p = sub.add_parser(
        "plan",
        help="show what apply would change",
        description="Compare the configuration with the node's state and print the changes. "
        "Exit status: 0 success (with --detailed-exitcode: no changes), 1 error, "
        "2 changes present (only with --detailed-exitcode).",
    )
    add_input_options(p)
    add_local_state_option(p)
    p.add_argument("--out", metavar="FILE", help="save the plan for 'ipsecconf apply FILE'")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes, 0 when there are none",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="also delete entries not managed by ipsecconf (drift)",
    )
    p.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    # Planning reads; only a saved plan needs the state to exist (its lineage and the salt
    # of its secret fingerprints must be the ones apply will find).
    svc = service(args, empty=not args.out)
    try:
        planned = svc.plan(inputs(args))
        print_diagnostics(planned.load.warnings)
        plan = planned.plan
        log.debug(
            "planned against %s (lineage %s, serial %d): %d changes, %d unchanged",
            svc.backend.location,
            plan.lineage,
            plan.serial,
            len(plan.changes),
            plan.unchanged,
        )
        if args.out:
            svc.save(planned, args.out)
        if args.json:
            print_json(render_json.render(plan))
        else:
            sys.stdout.write(render_text.render(plan, colour=use_colour(sys.stdout)))
            if args.out:
                sys.stdout.write(
                    f"\nSaved the plan to {args.out}. Apply exactly this plan with:\n"
                    f"  ipsecconf apply {args.out}\n"
                )
    finally:
        svc.backend.close()
    return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else EXIT_OK
