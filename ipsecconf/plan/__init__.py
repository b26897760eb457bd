"""Plan layer: desired vs stored state gives a Plan of Changes; renderings; saved plans.

:func:`build_desired` turns a loaded configuration into resources, :func:`diff` compares
them with a store snapshot, :mod:`.render_text` / :mod:`.render_json` print the result,
:mod:`.planfile` saves and reads plans, and :mod:`.export` writes the state back as YAML.
"""

from ipsecconf.plan.desired import DesiredState, SecretValue
from ipsecconf.plan.desired import build as build_desired
from ipsecconf.plan.differ import diff
from ipsecconf.plan.model import Action, AffectedSa, Change, FieldChange, Plan, Summary

__all__ = [
    "Action",
    "AffectedSa",
    "Change",
    "DesiredState",
    "FieldChange",
    "Plan",
    "SecretValue",
    "Summary",
    "build_desired",
    "diff",
]
