"""Saved plan files (``plan --out FILE``, ``apply FILE``).

A saved plan is JSON: the rendered plan (for reading), the state's lineage and serial it
was made against, the digests of the desired configuration and of the plan's changes,
and the inputs (paths, ``--var`` values, vars files, working directory) that produced
it.  It never holds a secret value: secrets are resolved again at apply time from the
same references, and a keyed digest of their fingerprints (HMAC under the store's salt,
useless without the 0600 store) must match, or the plan is refused.  ``--var`` values are
recorded, as Terraform records variables; secrets belong in ``env:``/``file:``
references, never in template variables.

Files are written 0600 and atomically (temp file + rename), so a crash never leaves a
half-written plan.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any

from ipsecconf.errors import IpsecconfError
from ipsecconf.plan import render_json
from ipsecconf.plan.model import Plan

PLANFILE_VERSION = 1
MAGIC = "ipsecconf-plan"


class PlanFileError(IpsecconfError):
    """A saved plan that cannot be read or does not fit."""


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a plan was made from."""

    paths: list[str]
    variables: dict[str, Any]
    vars_files: list[str]
    prune: bool = False

    @classmethod
    def make(
        cls, paths: list[str], variables: dict[str, Any], vars_files: list[str], prune: bool
    ) -> Inputs:
        """Inputs with absolute paths (a plan may be applied from another directory)."""
        return cls(
            [os.path.abspath(p) for p in paths],
            dict(variables),
            [os.path.abspath(p) for p in vars_files],
            prune,
        )


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """A plan read back from a file."""

    path: str
    inputs: Inputs
    lineage: str
    serial: int
    plan_digest: str
    desired_digest: str
    secrets_digest: str
    document: dict[str, Any]
    """The JSON plan as rendered when saved."""


def write(path: str, plan: Plan, inputs: Inputs) -> None:
    """Save ``plan`` to ``path`` (0600, atomic)."""
    doc = {
        "magic": MAGIC,
        "planfile_version": PLANFILE_VERSION,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "plan_digest": plan.digest(),
        "desired_digest": plan.desired_digest,
        "secrets_digest": plan.secrets_digest,
        "inputs": {
            "paths": inputs.paths,
            "variables": inputs.variables,
            "vars_files": inputs.vars_files,
            "prune": inputs.prune,
        },
        "plan": render_json.render(plan),
    }
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PlanFileError(f"cannot write the plan to {path}: {exc.strerror}") from None


def is_planfile(path: str) -> bool:
    """True when ``path`` is a saved plan (not a YAML file or directory)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and MAGIC.encode() in head


def read(path: str) -> SavedPlan:
    """Read a saved plan; :class:`PlanFileError` says what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise PlanFileError(f"cannot read the plan {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise PlanFileError(f"{path} is not a saved plan (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("magic") != MAGIC:
        raise PlanFileError(f"{path} is not an ipsecconf saved plan")
    if doc.get("planfile_version") != PLANFILE_VERSION:
        raise PlanFileError(
            f"{path} is a saved plan of format {doc.get('planfile_version')}; this ipsecconf "
            f"reads format {PLANFILE_VERSION}; run plan again"
        )
    try:
        raw = doc["inputs"]
        inputs = Inputs(
            [str(p) for p in raw["paths"]],
            dict(raw["variables"]),
            [str(p) for p in raw["vars_files"]],
            bool(raw["prune"]),
        )
        return SavedPlan(
            path=path,
            inputs=inputs,
            lineage=str(doc["lineage"]),
            serial=int(doc["serial"]),
            plan_digest=str(doc["plan_digest"]),
            desired_digest=str(doc["desired_digest"]),
            secrets_digest=str(doc["secrets_digest"]),
            document=dict(doc["plan"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"{path}: damaged saved plan (missing {exc})") from None
