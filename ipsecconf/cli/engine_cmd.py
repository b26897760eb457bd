"""``ipsecconf engine run``: the IKE/ESP engine in the foreground (systemd runs it so; see
``examples/ipsecconf-engine.service``)."""

from __future__ import annotations

import argparse

from ipsecconf.cli.state_args import add_local_state_option
from ipsecconf.errors import IpsecconfError
from ipsecconf.ike.config import RetransmitPolicy
from ipsecconf.io import logfmt
from ipsecconf.io.daemon import Daemon
from ipsecconf.io.hostnet import Names
from ipsecconf.state import kek_material, state_path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``engine run``."""
    p = sub.add_parser("engine", help="run the IKE and ESP/AH engine")
    esub = p.add_subparsers(dest="engine_command", metavar="ACTION")
    esub.required = True
    r = esub.add_parser("run", help="run the engine in the foreground until SIGTERM/SIGINT")
    add_local_state_option(r)
    r.add_argument("--log-format", choices=("text", "json"), default="text")
    r.add_argument(
        "-v", "--verbose", dest="engine_verbose", action="count", default=0, help="debug logs"
    )
    d = Names()
    r.add_argument(
        "--tun", default=d.tun, type=_ifname, metavar="NAME", help=f"TUN device (default {d.tun})"
    )
    r.add_argument("--mtu", type=int, default=d.mtu, help=f"TUN MTU (default {d.mtu})")
    r.add_argument("--table", type=int, default=d.table, help=f"routing table (default {d.table})")
    r.add_argument("--fwmark", type=lambda s: int(s, 0), default=d.mark, help="firewall mark")
    rt = RetransmitPolicy()
    r.add_argument(
        "--ike-timeout", type=float, default=rt.timeout, metavar="SECONDS",
        help=f"first IKE retransmission after SECONDS, growing by {rt.base} (default {rt.timeout})",
    )  # fmt: skip
    r.add_argument(
        "--ike-tries", type=int, default=rt.tries, metavar="N",
        help=f"IKE retransmissions before a negotiation fails (default {rt.tries}); permit "
        "policies fall back to clear traffic then",
    )  # fmt: skip
    r.set_defaults(func=run)


def _ifname(text: str) -> str:
    if not 0 < len(text) <= 15 or "/" in text or text.strip() != text:
        raise argparse.ArgumentTypeError(f"not a network interface name: {text!r} (1-15 chars)")
    return text


def run(args: argparse.Namespace) -> int:
    """Run the daemon until it is stopped."""
    logfmt.setup(args.log_format, args.engine_verbose + args.verbose)
    names = Names(tun=args.tun, table=args.table, pref=args.table, mark=args.fwmark, mtu=args.mtu)
    if args.ike_timeout <= 0 or args.ike_tries < 0:
        raise IpsecconfError("--ike-timeout must be positive and --ike-tries not negative")
    retransmit = RetransmitPolicy(timeout=args.ike_timeout, tries=args.ike_tries)
    path = state_path(getattr(args, "state", None))
    return Daemon(path, names, kek_material(), retransmit=retransmit).run()
