"""``ipsecconf validate`` and ``ipsecconf schema``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ipsecconf.cli.args import EXIT_ERROR, EXIT_OK, add_input_options
from ipsecconf.cli.output import print_diagnostics, print_json
from ipsecconf.config import LoadResult, load
from ipsecconf.config.sources import parse_var
from ipsecconf.errors import UsageError
from ipsecconf.model.desired import Document


def schema() -> dict[str, Any]:
    """The JSON Schema of the desired state, generated from the model."""
    return Document.model_json_schema(mode="validation")


def variables(args: argparse.Namespace) -> dict[str, Any]:
    """``--var`` options as a dict."""
    out: dict[str, Any] = {}
    for text in args.var:
        try:
            name, value = parse_var(text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        out[name] = value
    return out


def load_args(args: argparse.Namespace, *, offline: bool = False) -> LoadResult:
    """Load the desired state named by the input options of a command."""
    return load(args.paths, variables=variables(args), vars_files=args.vars_file, offline=offline)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``validate`` and ``schema``."""
    p = sub.add_parser("validate", help="check the desired state (schema, semantics, secrets)")
    add_input_options(p)
    p.add_argument("--json", action="store_true", help="print the diagnostics as JSON")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument(
        "--offline",
        action="store_true",
        help="check secret references without resolving them (CI without secrets)",
    )
    p.set_defaults(func=run_validate)
    s = sub.add_parser("schema", help="print the JSON Schema of the desired state")
    s.set_defaults(func=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    result = load_args(args, offline=args.offline)
    failed = bool(result.errors) or (args.strict and bool(result.warnings))
    if args.json:
        print_json([d.as_dict() for d in result.diagnostics])
    else:
        print_diagnostics(result.diagnostics)
        if not failed and result.document is not None:
            doc = result.document
            sys.stdout.write(
                f"valid: {len(doc.policies)} policies ({len(result.rows)} SPD entries), "
                f"{len(doc.peers)} peers, {len(doc.manual_sas)} manual SAs"
                f"{f', {len(result.warnings)} warnings' if result.warnings else ''}\n"
            )
        elif failed:
            n, w = len(result.errors), len(result.warnings)
            what = f"{n} error{'s' if n != 1 else ''}"
            if args.strict and w:
                what += f" and {w} warning{'s' if w != 1 else ''} (--strict)"
            sys.stderr.write(f"invalid: {what}\n")
    return EXIT_ERROR if failed else EXIT_OK


def run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(schema(), indent=2) + "\n")
    return EXIT_OK
