"""``ipsecconf show policies|sas|certs|stats|history`` and ``ipsecconf export``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from ipsecconf.cli.args import EXIT_OK
from ipsecconf.cli.output import print_json
from ipsecconf.cli.state_args import add_local_state_option, service
from ipsecconf.engine.show import WHAT
from ipsecconf.errors import IpsecconfError
from ipsecconf.state import SA_STATES


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``show`` and ``export``."""
    p = sub.add_parser("show", help="show the node's state (never secret values)")
    p.add_argument("what", choices=WHAT, help="what to show")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_local_state_option(p)
    p.set_defaults(func=run_show)
    e = sub.add_parser(
        "export", help="write the node's state as YAML (secrets as references, never values)"
    )
    e.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    add_local_state_option(e)
    e.set_defaults(func=run_export)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return (
        "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
        )
        + "\n"
    )


def _sel(s: dict[str, Any]) -> tuple[str, str]:
    src = s["source"] + ("" if s["source_ports"] == "any" else f"[{s['source_ports']}]")
    dst = s["destination"] + (
        "" if s["destination_ports"] == "any" else f"[{s['destination_ports']}]"
    )
    return src, dst


def _text(what: str, data: Any) -> str:
    if what == "policies":
        rows = []
        for p in data:
            for s in p["selectors"]:
                src, dst = _sel(s)
                rows.append(
                    (
                        p["index"],
                        p["name"],
                        "yes" if p["managed"] else "no",
                        src,
                        dst,
                        s["protocol"],
                        p["direction"],
                        p["protocol"] or p["action"],
                        p["level"],
                        p["encryption"],
                        p["authentication"],
                    )
                )
        return _table(
            (
                "Index",
                "Name",
                "Managed",
                "Source",
                "Destination",
                "Proto",
                "Dir",
                "Policy",
                "Level",
                "Encryption",
                "Auth",
            ),
            rows,
        )
    if what == "sas":
        return _table(
            ("Id", "Proto", "SPI", "State", "Source", "Destination", "Alg", "Bytes", "Owner"),
            [
                (
                    sa["id"],
                    sa["protocol"],
                    sa["spi_hex"],
                    SA_STATES.get(sa["state"], sa["state"]),
                    sa["source"],
                    sa["destination"],
                    f"{sa['encryption']}/{sa['authentication']}",
                    sa["bytes"],
                    sa["manual"] or sa["policy"] or "-",
                )
                for sa in data
            ],
        )
    if what == "certs":
        return _table(
            ("Role", "Subject", "Issuer", "Not after", "Fingerprint (SHA-256)", "Managed"),
            [
                (
                    ("own " if c["own"] else "") + c["role"],
                    c["subject"],
                    c["issuer"],
                    c["not_after"],
                    c["fingerprint"],
                    "yes" if c["managed"] else "no",
                )
                for c in data
            ],
        )
    if what == "stats":
        out = _table(("Counter", "Value"), sorted(data["counters"].items()))
        states = ", ".join(
            f"{SA_STATES.get(k, k)} {v}" for k, v in sorted(data["sas_by_state"].items())
        )
        return out + f"SAs: {data['sas']}{f' ({states})' if states else ''}\n"
    return _table(
        ("Id", "When (UTC)", "Who", "Serial", "Summary", "Plan digest"),
        [
            (h["id"], h["at"], h["who"], h["serial"], h["summary"], h["plan_digest"][:16])
            for h in data
        ],
    )


def run_show(args: argparse.Namespace) -> int:
    svc = service(args, create=False)
    try:
        data = svc.show(args.what)
    finally:
        svc.backend.close()
    if args.json:
        print_json(data)
    else:
        sys.stdout.write(_text(args.what, data))
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    svc = service(args, create=False)
    try:
        text = svc.export()
    finally:
        svc.backend.close()
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    tmp = f"{args.output}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, args.output)
    except OSError as exc:
        raise IpsecconfError(f"cannot write {args.output}: {exc.strerror}") from None
    return EXIT_OK
