"""The classic ``ipsec`` command of the seed man page (na_ipsec(1), Data ONTAP 7-mode).

People who ran it for years find every command, option and output they remember::

    ipsec policy add [-s src_ip/prefixlen[port]] [-t dst_ip/prefixlen[port]] -p {esp|ah|none}
          [-e {des|3des|null}] [-a {sha1|md5|null}] -d {in|out} [-f ip_protocol]
          [-l {restrict|permit}] [-m]
    ipsec policy delete all | -i index [[-s src_ip|-t dst_ip] -d {in|out} [-m]]
    ipsec policy show [-s src_ip] [-t dst_ip] [-f ip_protocol] [-d {in|out}] [-p {esp|ah}]
    ipsec cert set [-c <file_name> -k <file_name>]
    ipsec cert set [-r <file_name1> <file_name2> ..]
    ipsec cert show
    ipsec sa show [spi [-s src_ip -t dst_ip -p {esp|ah}]] [-v]
    ipsec stats [-z]

It works on the same databases as ``ipsecconf`` through the same service interface, so
a running engine sees its changes.  Entries it makes are unmanaged: ``ipsecconf plan``
reports them as drift and ``ipsecconf export`` writes them as YAML.  Wrong input gets the
usage line of that command and a one-line reason, exit 1, and no change to the store.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ipsecconf.cli import ipsec_misc, ipsec_policy
from ipsecconf.cli.args import EXIT_ERROR, Parser
from ipsecconf.errors import ConfigError, IpsecconfError, UsageError

USAGE = {
    "policy add": "ipsec policy add [-s src_ip/prefixlen[port]] [-t dst_ip/prefixlen[port]] "
    "-p {esp|ah|none} [-e {des|3des|null}] [-a {sha1|md5|null}] -d {in|out} "
    "[-f ip_protocol] [-l {restrict|permit}] [-m]",
    "policy delete": "ipsec policy delete all | -i index [[-s src_ip|-t dst_ip] -d {in|out} [-m]]",
    "policy show": "ipsec policy show [-s src_ip] [-t dst_ip] [-f ip_protocol] [-d {in|out}] "
    "[-p {esp|ah}]",
    "cert set": "ipsec cert set [-c <file_name> -k <file_name>] | [-r <file_name1> "
    "<file_name2> ..]",
    "cert show": "ipsec cert show",
    "sa show": "ipsec sa show [spi [-s src_ip -t dst_ip -p {esp|ah}]] [-v]",
    "stats": "ipsec stats [-z]",
}

ADDITIONS = """\
deliberate additions to the original command:
  -e also takes aes128, aes192, aes256, aes128gcm, aes256gcm, chacha20poly1305;
  -a also takes sha256, sha384, sha512 and none (no integrity, AEAD ciphers only);
  -p also takes discard; -f also takes protocol names (tcp, udp, icmp, ...);
  -m is accepted on add (the man page describes it but its synopsis omits it);
  every command takes --json, and --state PATH (or $IPSECCONF_STATE) picks the database.
"""


def _sub(sub: argparse._SubParsersAction, name: str, key: str, help_text: str) -> Parser:  # type: ignore[type-arg]
    parser: Parser = sub.add_parser(name, usage=USAGE[key], help=help_text)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--state", metavar="PATH", default=argparse.SUPPRESS)
    # Wrong input found after parsing is reported by the same parser, with its usage line.
    parser.set_defaults(command_parser=parser)
    return parser


def build_parser() -> Parser:
    """The whole ``ipsec`` argument parser."""
    parser = Parser(
        prog="ipsec",
        description="Manipulate the IPsec SP/SA/certificate databases and show statistics.",
        epilog=ADDITIONS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state", metavar="PATH", help="state database (or $IPSECCONF_STATE)")
    top = parser.add_subparsers(dest="area", metavar="{policy,cert,sa,stats}", parser_class=Parser)
    top.required = True

    policy = top.add_parser("policy", help="the security policy database (SPD)")
    psub = policy.add_subparsers(dest="verb", metavar="{add,delete,show}", parser_class=Parser)
    psub.required = True
    ipsec_policy.add_arguments(_sub(psub, "add", "policy add", "add a policy (and its mirror)"))
    ipsec_policy.delete_arguments(_sub(psub, "delete", "policy delete", "delete policies"))
    ipsec_policy.show_arguments(_sub(psub, "show", "policy show", "list policies"))

    cert = top.add_parser("cert", help="certificates used by IKE")
    csub = cert.add_subparsers(dest="verb", metavar="{set,show}", parser_class=Parser)
    csub.required = True
    ipsec_misc.cert_set_arguments(_sub(csub, "set", "cert set", "set certificates"))
    ipsec_misc.cert_show_arguments(_sub(csub, "show", "cert show", "list certificates"))

    sa = top.add_parser("sa", help="the security association database (SAD)")
    ssub = sa.add_subparsers(dest="verb", metavar="{show}", parser_class=Parser)
    ssub.required = True
    ipsec_misc.sa_show_arguments(_sub(ssub, "show", "sa show", "list security associations"))

    ipsec_misc.stats_arguments(_sub(top, "stats", "stats", "show (or zero) the statistics"))
    return parser


def wrong_input(args: argparse.Namespace, reason: str) -> int:
    """Report input the command refused: its usage line and the reason, exit status 1."""
    parser: Parser = args.command_parser
    return parser.report(reason)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ipsec``; return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame the top-level command; the usage wanted is the leaf's
        return wrong_input(args, f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return wrong_input(args, "; ".join(d.message for d in exc.errors) or str(exc))
    except UsageError as exc:
        return wrong_input(args, str(exc))
    except IpsecconfError as exc:  # not the command line's fault: the store, the engine...
        sys.stderr.write(f"ipsec: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
