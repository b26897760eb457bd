"""``ipsec policy add | delete | show``: the seed's SPD commands, with its column layout.

``add`` makes the mirror policy (source and destination swapped, opposite direction)
unless ``-m`` is given.  ``-e`` omitted means the best negotiated cipher and ``-e null``
no encryption; ``-a null`` and ``-a`` omitted mean the best negotiated integrity, as the
man page says.  A port without ``-f`` means TCP and UDP.  The policy is checked with the
same rules as ``ipsecconf validate`` before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ipsecconf.cli.ipsec_misc import IpsecUsage, opened
from ipsecconf.cli.output import print_json
from ipsecconf.config.checks import check_standalone
from ipsecconf.engine.service import Service
from ipsecconf.errors import ConfigError
from ipsecconf.model.desired import Document, Policy
from ipsecconf.model.selectors import PROTOCOL_WORDS, Endpoint, SelectorError, parse_protocol
from ipsecconf.model.spd import expand

ENCRYPTION_WORDS = (
    "des",
    "3des",
    "null",
    "aes128",
    "aes192",
    "aes256",
    "aes128gcm",
    "aes256gcm",
    "chacha20poly1305",
)
AUTH_WORDS = ("sha1", "md5", "null", "sha256", "sha384", "sha512", "none")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``policy add``."""
    p.add_argument("-s", dest="source", metavar="src_ip/prefixlen[port]")
    p.add_argument("-t", dest="destination", metavar="dst_ip/prefixlen[port]")
    p.add_argument("-p", dest="protocol", required=True, choices=("esp", "ah", "none", "discard"))
    p.add_argument("-e", dest="encryption", metavar="{des|3des|null}")
    p.add_argument("-a", dest="authentication", metavar="{sha1|md5|null}")
    p.add_argument("-d", dest="direction", required=True, choices=("in", "out"))
    p.add_argument("-f", dest="ip_protocol", metavar="ip_protocol")
    p.add_argument("-l", dest="level", choices=("restrict", "permit"), default="restrict")
    p.add_argument("-m", dest="no_mirror", action="store_true", help="do not create the mirror")
    p.set_defaults(func=run_add)


def delete_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``policy delete``."""
    p.add_argument("all", nargs="?", metavar="all")
    p.add_argument("-i", dest="index", type=int, metavar="index")
    p.add_argument("-s", dest="source", metavar="src_ip")
    p.add_argument("-t", dest="destination", metavar="dst_ip")
    p.add_argument("-d", dest="direction", choices=("in", "out"))
    p.add_argument("-m", dest="no_mirror", action="store_true", help="leave the mirror in place")
    p.set_defaults(func=run_delete)


def show_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``policy show``."""
    p.add_argument("-s", dest="source", metavar="src_ip")
    p.add_argument("-t", dest="destination", metavar="dst_ip")
    p.add_argument("-f", dest="ip_protocol", metavar="ip_protocol")
    p.add_argument("-d", dest="direction", choices=("in", "out"))
    p.add_argument("-p", dest="protocol", choices=("esp", "ah"))
    p.set_defaults(func=run_show)


def _encryption(word: str | None) -> str:
    if word is None:
        return "auto"
    w = word.lower()
    if w not in ENCRYPTION_WORDS:
        raise IpsecUsage(
            f"-e {word}: not an encryption algorithm; use {', '.join(ENCRYPTION_WORDS)}",
        )
    return w


def _authentication(word: str | None) -> str:
    if word is None or word.lower() == "null":
        return "auto"  # the man page: "To choose the best negotiated algorithm choose null"
    w = word.lower()
    if w == "ah":
        raise IpsecUsage(
            "-a ah: 'ah' is a protocol (-p ah), not an "
            "authentication algorithm; use sha1, md5 or null (the man page's "
            "own example is wrong here)",
        )
    if w not in AUTH_WORDS:
        raise IpsecUsage(f"-a {word}: not an authentication algorithm; use {', '.join(AUTH_WORDS)}")
    return w


def _endpoint(flag: str, text: str | None) -> str:
    if text is None:
        return "any"
    try:
        Endpoint.parse(text)
    except SelectorError as exc:
        raise IpsecUsage(f"{flag} {text}: {exc}") from None
    return text


def build_policy(args: argparse.Namespace, name: str) -> Policy:
    """The policy a ``policy add`` command line describes; IpsecUsage/ConfigError if bad."""
    fields: dict[str, Any] = {
        "name": name,
        "source": _endpoint("-s", args.source),
        "destination": _endpoint("-t", args.destination),
        "protocol": args.protocol,
        "direction": args.direction,
        "level": args.level,
        "mirror": not args.no_mirror,
    }
    if args.protocol in ("esp", "ah"):
        fields["encryption"] = _encryption(args.encryption)
        fields["authentication"] = _authentication(args.authentication)
    elif args.encryption or args.authentication:
        raise IpsecUsage(f"-e/-a make no sense with -p {args.protocol}")
    if args.ip_protocol is not None:
        try:
            fields["ip_protocol"] = parse_protocol(args.ip_protocol)
        except SelectorError as exc:
            raise IpsecUsage(f"-f {args.ip_protocol}: {exc}") from None
    try:
        policy = Policy.model_validate(fields)
    except ValueError as exc:
        raise IpsecUsage(str(exc).splitlines()[-1]) from None
    problems = check_standalone(Document(policies=[policy]))
    if any(d.severity.value == "error" for d in problems):
        raise ConfigError(problems)
    for d in problems:
        sys.stderr.write(f"ipsec: warning: {d.message}\n")
    return policy


def run_add(args: argparse.Namespace) -> int:
    """``ipsec policy add``."""
    policy = build_policy(args, "pending")  # refused input must not create the store
    with opened(args, create=True) as svc:
        name = svc.backend.new_policy_name()
        rows = expand(policy.model_copy(update={"name": name}))
        indexes = svc.backend.add_policies(rows, managed=False)
    added = [
        {"index": i, "name": r.name, "direction": r.direction}
        for i, r in zip(indexes, rows, strict=True)
    ]
    if args.json:
        print_json({"added": added})
    else:
        for a in added:
            sys.stdout.write(f"policy {a['index']} added ({a['direction']})\n")
    return 0


def _stored(svc: Service) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = svc.show("policies")
    return rows


def _matches_address(side: dict[str, Any], text: str | None) -> bool:
    if text is None:
        return True
    try:
        wanted = Endpoint.parse(text)
    except SelectorError:
        return False
    have = Endpoint.parse(side["address"]) if side["address"] != "any" else Endpoint()
    return have.network == wanted.network and (not wanted.has_ports or have.ports == wanted.ports)


def _sides(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    sel = row["selectors"][0]
    src = {"address": sel["source"], "ports": sel["source_ports"]}
    dst = {"address": sel["destination"], "ports": sel["destination_ports"]}
    for side in (src, dst):
        if side["ports"] != "any":
            side["address"] = f"{side['address']}[{side['ports']}]"
    return src, dst


def _check_delete(args: argparse.Namespace) -> None:
    """Refuse a ``policy delete`` line the man page does not allow, before any store is read."""
    if args.all not in (None, "all"):
        raise IpsecUsage(f"unexpected argument {args.all!r}")
    forms = [
        args.all == "all",
        args.index is not None,
        args.source is not None or args.destination is not None,
    ]
    if sum(forms) != 1:
        raise IpsecUsage("give exactly one of: all, -i index, or -s/-t with -d")
    if forms[2] and args.direction is None:
        raise IpsecUsage("deleting by address needs -d {in|out}")
    for flag, value in (("-s", args.source), ("-t", args.destination)):
        if value is not None:
            _endpoint(flag, value)


def _chosen_for_delete(
    args: argparse.Namespace, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows a checked ``policy delete`` line names (mirrors not yet added)."""
    if args.all == "all":
        return rows
    if args.index is not None:
        chosen = [r for r in rows if r["index"] == args.index]
        if not chosen:
            raise IpsecUsage(f"-i {args.index}: no policy with that index (see ipsec policy show)")
        return chosen
    chosen = []
    for r in rows:
        src, dst = _sides(r)
        if (
            r["direction"] == args.direction
            and _matches_address(src, args.source)
            and _matches_address(dst, args.destination)
        ):
            chosen.append(r)
    if not chosen:
        raise IpsecUsage("no policy matches those addresses and direction")
    return chosen


def _with_mirrors(
    args: argparse.Namespace, rows: list[dict[str, Any]], chosen: list[dict[str, Any]]
) -> list[int]:
    """Index numbers to delete: the chosen rows and, unless ``-m``, their mirrors."""
    names = {r["name"] for r in chosen}
    if not args.no_mirror:
        pairs = {r["policy"] for r in chosen}
        names |= {r["name"] for r in rows if r["policy"] in pairs and r.get("mirrored", True)}
    return [r["index"] for r in rows if r["name"] in names]


def run_delete(args: argparse.Namespace) -> int:
    """``ipsec policy delete all | -i index | [-s|-t] -d``."""
    _check_delete(args)
    with opened(args) as svc:  # a store that does not exist has nothing to delete
        rows = _stored(svc)
        indexes = _with_mirrors(args, rows, _chosen_for_delete(args, rows))
        deleted = svc.backend.delete_policies(indexes)
    if args.json:
        print_json({"deleted": sorted(indexes), "names": sorted(deleted)})
    else:
        sys.stdout.write(f"{len(indexes)} polic{'y' if len(indexes) == 1 else 'ies'} deleted\n")
    return 0


def _column(side: dict[str, Any], proto: int) -> str:
    address = side["address"].split("[")[0]
    if address == "any":
        addr, prefix = "any", "any"
    else:
        addr, _, prefix = address.partition("/")
    port = side["ports"]
    return f"{addr}/{prefix}/[{port:<5}]/{PROTOCOL_WORDS.get(proto, str(proto))}"


def format_row(r: dict[str, Any]) -> str:
    """One ``policy show`` line in the seed's layout."""
    protos = sorted({s["protocol"] for s in r["selectors"]})
    proto = protos[0] if len(protos) == 1 else 0
    src, dst = _sides(r)
    what = {"protect": "IPSEC", "bypass": "NONE", "discard": "DISCARD"}[r["action"]]
    ipsec = r["protocol"] or "-"
    algs = f"{r['encryption']}/{r['authentication']}" if r["action"] == "protect" else "-"
    flow = f"{_column(src, proto)} -> {_column(dst, proto)}"
    if len(protos) > 1:
        flow += " (tcp+udp)"
    return (
        f"{r['index']:>7}  {flow:<56}  {r['direction']:<3}/{what:<7} "
        f"{ipsec}/{r['level']:<10} {algs}"
    )


HEADER = (
    "  Index  IPAddress/prefix/port/protocol                            Dir/Policy  "
    "Proto/SecLevel  ealg/aalg\n"
    "  -----  --------------------------------------------------------  ----------  "
    "--------------  ---------\n"
)


def run_show(args: argparse.Namespace) -> int:
    """``ipsec policy show`` with the man page's filters."""
    proto = None
    if args.ip_protocol is not None:
        try:
            proto = parse_protocol(args.ip_protocol)
        except SelectorError as exc:
            raise IpsecUsage(f"-f {args.ip_protocol}: {exc}") from None
    for flag, value in (("-s", args.source), ("-t", args.destination)):
        if value is not None:
            _endpoint(flag, value)
    with opened(args) as svc:
        stored = _stored(svc)
    rows = []
    for r in stored:
        src, dst = _sides(r)
        if not (_matches_address(src, args.source) and _matches_address(dst, args.destination)):
            continue
        if args.direction and r["direction"] != args.direction:
            continue
        if args.protocol and r["protocol"] != args.protocol:
            continue
        if proto is not None and proto not in {s["protocol"] for s in r["selectors"]}:
            continue
        rows.append(r)
    if args.json:
        print_json(rows)
        return 0
    sys.stdout.write(HEADER)
    for r in rows:
        sys.stdout.write(format_row(r) + "\n")
    return 0
