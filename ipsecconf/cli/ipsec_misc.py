"""``ipsec cert set | show``, ``ipsec sa show`` and ``ipsec stats``, in the seed's layouts.

``cert set -c -k`` checks with the shared X.509 code that the certificate and the key
belong together before anything is stored; ``-r`` takes 1 to 15 root certificates.
``sa show -v`` adds algorithms, lifetimes and counters, never key material.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import os
import sys
from collections.abc import Iterator
from typing import Any

from ipsecconf.cli.output import print_json
from ipsecconf.cli.state_args import service
from ipsecconf.engine.imperative import CertFile, NodeCert, check_certificates
from ipsecconf.engine.service import Service
from ipsecconf.errors import UsageError
from ipsecconf.model.desired import MAX_ROOTS


class IpsecUsage(UsageError):
    """A command line the man page does not allow: reported with that command's usage."""


@contextlib.contextmanager
def opened(args: argparse.Namespace, *, create: bool = False) -> Iterator[Service]:
    """The service over the store named by ``--state`` / $IPSECCONF_STATE / the default.

    Only commands that add something ``create`` a missing store; the others (show,
    delete, stats) read an empty one in memory, as ``ipsecconf plan`` does, so that they
    leave no file behind.  Commands check their input before they get here.
    """
    svc = service(args, create=create, empty=not create)
    try:
        yield svc
    finally:
        svc.backend.close()


def cert_set_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``cert set``."""
    p.add_argument("-c", dest="cert", metavar="file_name")
    p.add_argument("-k", dest="key", metavar="file_name")
    p.add_argument("-r", dest="roots", nargs="+", metavar="file_name")
    p.set_defaults(func=run_cert_set)


def cert_show_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``cert show``."""
    p.set_defaults(func=run_cert_show)


def sa_show_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``sa show``."""
    p.add_argument("spi", nargs="?", help="SPI, decimal or 0x hex")
    p.add_argument("-s", dest="source", metavar="src_ip")
    p.add_argument("-t", dest="destination", metavar="dst_ip")
    p.add_argument("-p", dest="protocol", choices=("esp", "ah"))
    p.add_argument("-v", dest="verbose", action="store_true", help="algorithms and counters")
    p.set_defaults(func=run_sa_show)


def stats_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``stats``."""
    p.add_argument("-z", dest="zero", action="store_true", help="zero the counters")
    p.set_defaults(func=run_stats)


def _read(flag: str, path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise IpsecUsage(f"{flag} {path}: {exc.strerror}") from None


def _cert_request(args: argparse.Namespace) -> tuple[NodeCert | None, list[CertFile] | None]:
    """The node certificate or the roots a ``cert set`` line names, read and checked."""
    node = args.cert is not None or args.key is not None
    if node == bool(args.roots):
        raise IpsecUsage("give either -c and -k, or -r with 1 to 15 files")
    if node and (args.cert is None or args.key is None):
        raise IpsecUsage("-c and -k go together: the certificate and its key")
    if args.roots and len(args.roots) > MAX_ROOTS:
        raise IpsecUsage(f"-r takes at most {MAX_ROOTS} root certificates, got {len(args.roots)}")
    request: tuple[NodeCert | None, list[CertFile] | None]
    if node:
        cert = CertFile(_read("-c", args.cert), os.path.abspath(args.cert))
        key = _read("-k", args.key)
        request = (NodeCert(cert, key, key_reference=f"file:{os.path.abspath(args.key)}"), None)
    else:
        request = (None, [CertFile(_read("-r", p), os.path.abspath(p)) for p in args.roots])
    check_certificates(*request)
    return request


def run_cert_set(args: argparse.Namespace) -> int:
    """``ipsec cert set -c FILE -k FILE`` or ``ipsec cert set -r FILE...``."""
    node, roots = _cert_request(args)
    with opened(args, create=True) as svc:
        svc.backend.set_certificates(node=node, roots=roots)
    if roots is None:
        done = "node certificate and key set"
    else:
        done = f"{len(roots)} root certificate{'s' if len(roots) != 1 else ''} set"
    if args.json:
        print_json({"result": done})
    else:
        sys.stdout.write(done + "\n")
    return 0


def run_cert_show(args: argparse.Namespace) -> int:
    """``ipsec cert show``: subject, issuer, validity, fingerprint, and which is our own."""
    with opened(args) as svc:
        certs: list[dict[str, Any]] = svc.show("certs")
    if args.json:
        print_json(certs)
        return 0
    if not certs:
        sys.stdout.write("no certificates\n")
    for c in certs:
        own = " (this node's own certificate)" if c.get("own") else ""
        sys.stdout.write(
            f"{c['role']}{own}\n"
            f"  Subject:     {c.get('subject', '?')}\n"
            f"  Issuer:      {c.get('issuer', '?')}\n"
            f"  Valid:       {c.get('not_before', '?')} .. {c.get('not_after', '?')}\n"
            f"  Fingerprint: {c.get('fingerprint', '?')}\n"
        )
    return 0


def _spi(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise IpsecUsage(f"{text!r} is not an SPI (decimal or 0x hex)") from None


def _created(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%d %b %Y %H:%M:%S")


SA_HEADER = (
    "  Alg/State/Spi        Current Bytes/CreatedTime          SrcIPAddr->DstIPAddr\n"
    "  -------------        -------------------------          --------------------\n"
)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _plain_address(flag: str, text: str | None) -> Address | None:
    """An ``sa show`` address: the man page allows no range (nor port) there."""
    if text is None:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if "/" in text or "[" in text:
        raise IpsecUsage(f"{flag} {text}: sa show takes a plain IP address, not a prefix or port")
    raise IpsecUsage(f"{flag} {text}: not an IP address")


def _same_address(stored: str, wanted: Address | None) -> bool:
    # Compared as addresses, so that 2001:db8::1 finds 2001:0db8:0:0:0:0:0:1.
    if wanted is None:
        return True
    try:
        return ipaddress.ip_address(stored) == wanted
    except ValueError:
        return False


def _chosen_sas(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The SAs an ``sa show`` line selects, its input checked before the store is read."""
    if args.spi is None and (args.source or args.destination or args.protocol):
        raise IpsecUsage("-s, -t and -p narrow down an spi: give the spi first")
    spi = _spi(args.spi) if args.spi is not None else None
    source = _plain_address("-s", args.source)
    destination = _plain_address("-t", args.destination)
    with opened(args) as svc:
        sas: list[dict[str, Any]] = svc.show("sas")
    return [
        {**sa, "details": _public(sa.get("details") or {})}
        for sa in sas
        if (spi is None or sa["spi"] == spi)
        and _same_address(sa["source"], source)
        and _same_address(sa["destination"], destination)
        and (args.protocol is None or sa["protocol"] == args.protocol)
    ]


def _public(details: dict[str, Any]) -> dict[str, Any]:
    """SA details without anything named like key material.

    The store records no keys today; this keeps it that way on screen should a future
    writer put one in the free-form details.
    """
    return {
        k: _public(v) if isinstance(v, dict) else v
        for k, v in details.items()
        if not any(word in k.lower() for word in ("key", "secret", "psk"))
    }


def _limit(value: Any, unit: str) -> str:
    return f"{value:g}{unit}" if value else "unlimited"  # 0 means no limit (Lifetimes)


def _verbose_lines(sa: dict[str, Any]) -> list[str]:
    """``-v``: algorithms, counters, lifetimes and the other (public) details."""
    details = dict(sa["details"])
    lines = [
        f"encryption {sa['encryption']}, authentication {sa['authentication']}",
        f"packets {sa.get('packets', 0)}, bytes {sa.get('bytes', 0)}",
    ]
    life = details.pop("lifetime", None)
    if isinstance(life, dict):
        lines.append(
            f"lifetime: soft {_limit(life.get('soft_seconds', 0), ' s')}, "
            f"hard {_limit(life.get('hard_seconds', 0), ' s')}, "
            f"hard bytes {_limit(life.get('hard_bytes', 0), '')}"
        )
    lines += [f"{key}: {details[key]}" for key in sorted(details)]
    return lines


def run_sa_show(args: argparse.Namespace) -> int:
    """``ipsec sa show [spi [-s -t -p]] [-v]``."""
    chosen = _chosen_sas(args)
    if args.json:
        print_json(chosen)
        return 0
    sys.stdout.write(SA_HEADER)
    for sa in chosen:
        head = f"{sa['protocol']}/{sa['state']}/{sa['spi']:08x}"
        now = f"{sa.get('bytes', 0)}/{_created(sa['created'])}"
        sys.stdout.write(f"  {head:<20} {now:<34} {sa['source']}->{sa['destination']}\n")
        if args.verbose:
            sys.stdout.writelines(f"      {line}\n" for line in _verbose_lines(sa))
    return 0


STAT_LABELS = {
    "packets_in": "packets in",
    "packets_out": "packets out",
    "bytes_in": "bytes in",
    "bytes_out": "bytes out",
    "esp_errors": "ESP errors",
    "ah_errors": "AH errors",
    "integrity_failures": "integrity check failures",
    "replay_failures": "replay check failures",
    "policy_drops": "packets dropped by policy",
    "ike_started": "IKE negotiations started",
    "ike_succeeded": "IKE negotiations succeeded",
    "ike_failed": "IKE negotiations failed",
}


def run_stats(args: argparse.Namespace) -> int:
    """``ipsec stats [-z]``: print the counters; ``-z`` zeroes them afterwards."""
    with opened(args) as svc:  # zeroing a store that does not exist changes nothing
        data: dict[str, Any] = svc.show("stats")
        if args.zero:
            svc.backend.zero_counters()
    counters: dict[str, int] = data["counters"]
    if args.json:
        print_json({**data, "zeroed": bool(args.zero)})
        return 0
    for name, value in counters.items():
        sys.stdout.write(f"  {STAT_LABELS.get(name, name):<32} {value:>12}\n")
    sys.stdout.write(f"  {'security associations':<32} {data['sas']:>12}\n")
    if args.zero:
        sys.stdout.write("counters zeroed\n")
    return 0
