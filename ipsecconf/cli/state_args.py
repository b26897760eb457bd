"""Shared plumbing of the state commands: the service for ``--state``, the inputs.

``--state`` is accepted both before the command (global) and after it; the later one wins.
"""

from __future__ import annotations

import argparse

from ipsecconf.cli.validate_cmd import variables
from ipsecconf.engine.service import Service, connect
from ipsecconf.io.client import connect as connect_engine
from ipsecconf.plan.planfile import Inputs
from ipsecconf.state import kek_material, state_path


def add_local_state_option(parser: argparse.ArgumentParser) -> None:
    """``--state`` after the command name too (does not override a global one unless given)."""
    parser.add_argument(
        "--state", metavar="PATH", default=argparse.SUPPRESS, help="state database (see --help)"
    )


def service(args: argparse.Namespace, *, create: bool = True, empty: bool = False) -> Service:
    """The service over the store named by ``--state`` / $IPSECCONF_STATE / the default:
    through the engine when one runs on it and answers its control socket, else the
    store itself (a missing one created, or with ``empty`` an empty one in memory)."""
    path = state_path(getattr(args, "state", None))
    engine = connect_engine(path)
    if engine is not None:
        return Service(engine)
    return Service(connect(path, kek=kek_material(), create=create, empty=empty))


def inputs(args: argparse.Namespace) -> Inputs:
    """The configuration inputs of a plan/apply command line."""
    return Inputs.make(list(args.paths), variables(args), list(args.vars_file), args.prune)
