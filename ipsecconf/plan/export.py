"""``ipsecconf export``: the stored state written back as desired-state YAML.

The output validates and plans to no changes against the state it came from (unmanaged
entries plan as adoptions, which change no SPD entry).  Secrets are written as references,
never values: the ``env:``/``file:`` reference recorded when the secret was applied (PSKs
from a psk.txt file name that file again under ``psk_file``), or, where none was recorded
(a literal), a generated ``env:`` name
``IPSECCONF_SECRET_<ADDRESS>`` (for example ``IPSECCONF_SECRET_PSK_198_51_100_2_KEY``),
listed in the header comment so that the operator knows what to set.

A mirrored pair becomes one policy (declared from its ``out`` row); a lone row, or a pair
that is not an exact mirror, becomes unmirrored policies.  Fields equal to the model's
defaults are left out.  YAML is written with ruamel.yaml, block style.
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from ipsecconf.model.desired import ManualSa, Peer, Policy
from ipsecconf.plan.desired import secret_address
from ipsecconf.state.records import StoredPolicy, StoredResource

RefLookup = Callable[[str], str | None]
"""Secret address -> recorded reference, ``""`` when none was recorded, None when absent."""


def env_name(address: str) -> str:
    """The generated environment variable for a secret without a recorded reference."""
    return "IPSECCONF_SECRET_" + re.sub(r"[^A-Za-z0-9]+", "_", address).strip("_").upper()


class _Refs:
    def __init__(self, lookup: RefLookup) -> None:
        self.lookup = lookup
        self.generated: list[str] = []

    def ref(self, address: str) -> str:
        found = self.lookup(address)
        if found and found.startswith(("env:", "file:")):
            return found
        name = env_name(address)
        self.generated.append(name)
        return f"env:{name}"


def _defaults(model: type[Any]) -> dict[str, Any]:
    out = {}
    for name, f in model.model_fields.items():
        if f.is_required():
            continue
        value = f.get_default(call_default_factory=True)
        out[name] = value.model_dump() if hasattr(value, "model_dump") else value
    return out


def _endpoint(address: str, ports: str) -> str:
    if ports == "any":
        return address
    return f"{'' if address == 'any' else address}[{ports}]"


def _is_mirror(out_row: dict[str, Any], in_row: dict[str, Any]) -> bool:
    def swap(s: dict[str, Any]) -> dict[str, Any]:
        return {
            "source": s["destination"],
            "source_ports": s["destination_ports"],
            "destination": s["source"],
            "destination_ports": s["source_ports"],
            "protocol": s["protocol"],
        }

    ignore = {"name", "direction", "selectors"}
    same = {k: v for k, v in out_row.items() if k not in ignore} == {
        k: v for k, v in in_row.items() if k not in ignore
    }
    return same and [swap(s) for s in out_row["selectors"]] == in_row["selectors"]


def _policy(name: str, row: dict[str, Any], mirror: bool, defaults: dict[str, Any]) -> Any:
    sel = row["selectors"]
    first = sel[0]
    p: dict[str, Any] = {"name": name}
    p["source"] = _endpoint(first["source"], first["source_ports"])
    p["destination"] = _endpoint(first["destination"], first["destination_ports"])
    both = len(sel) == 2 and {s["protocol"] for s in sel} == {6, 17}
    p["ip_protocol"] = 0 if both else first["protocol"]
    p["direction"] = row["direction"]
    action = row["action"]
    p["protocol"] = (
        row["protocol"] if action == "protect" else ("none" if action == "bypass" else "discard")
    )
    for key in (
        "encryption",
        "authentication",
        "level",
        "mode",
        "peer",
        "pfs_group",
        "replay_window",
        "esn",
        "udp_encapsulation",
        "start",
        "priority",
    ):
        p[key] = row.get(key)
    if row.get("esp_proposals"):
        p["esp_proposals"] = list(row["esp_proposals"])
    p["lifetime"] = row["lifetime"]
    p["mirror"] = mirror
    if row.get("tunnel_local") or row.get("tunnel_remote"):
        p["tunnel"] = {
            k: v
            for k, v in (("local", row.get("tunnel_local")), ("remote", row.get("tunnel_remote")))
            if v
        }
    out = CommentedMap()
    for key, value in p.items():
        if key != "name" and key != "direction" and (value is None or defaults.get(key) == value):
            continue
        out[key] = value
    return out


def _policies(rows: list[StoredPolicy]) -> list[Any]:
    defaults = _defaults(Policy)
    groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for sp in sorted(rows, key=lambda r: r.idx):
        groups[sp.policy][sp.direction] = json.loads(sp.data)
    out = []
    for name, pair in groups.items():
        o, i = pair.get("out"), pair.get("in")
        if o is not None and i is not None and o.get("mirrored") and _is_mirror(o, i):
            out.append(_policy(name, o, True, defaults))
            continue
        for direction, row in pair.items():
            single = name if len(pair) == 1 else f"{name}-{direction}"
            out.append(_policy(single, row, False, defaults))
    return out


def _clean(data: dict[str, Any], defaults: dict[str, Any]) -> CommentedMap:
    out = CommentedMap()
    if "name" in data:
        out["name"] = data["name"]
    for key, value in data.items():
        if key.startswith("_") or value is None:
            continue
        if key == "name" or defaults.get(key) == value:
            continue
        out[key] = value
    return out


def export_yaml(
    policies: list[StoredPolicy],
    resources: dict[str, list[StoredResource]],
    references: RefLookup,
) -> str:
    """The YAML text of the stored state."""
    refs = _Refs(references)
    doc = CommentedMap()
    doc["version"] = 1
    for r in resources.get("setting", []):
        if r.name == "default_action":
            doc["default_action"] = json.loads(r.data)["value"]
    certs = {r.name: json.loads(r.data) for r in resources.get("cert", [])}
    if certs:
        c = CommentedMap()
        node = certs.get("node")
        if node:
            c["certificate"] = node["_source"]
            c["private_key"] = refs.ref(secret_address("cert.node", "private_key"))
        inter = sorted(
            {d["_source"] for n, d in certs.items() if n.startswith("intermediate.")}
            - {node["_source"] if node else ""}
        )
        if inter:
            c["intermediates"] = inter
        roots = sorted({d["_source"] for n, d in certs.items() if n.startswith("root.")})
        if roots:
            c["roots"] = roots
        doc["certificates"] = c
    peer_defaults = _defaults(Peer)
    peers = []
    for r in resources.get("peer", []):
        p = _clean(json.loads(r.data), peer_defaults)
        if _has(r, "psk", references):
            p["psk"] = refs.ref(secret_address(f"peer.{r.name}", "psk"))
        peers.append(p)
    if peers:
        doc["peers"] = peers
    psks = []
    psk_files: list[str] = []
    for r in resources.get("psk", []):
        found = references(secret_address(f"psk.{r.name}", "key")) or ""
        if found.startswith("psk_file:"):
            if found[len("psk_file:") :] not in psk_files:
                psk_files.append(found[len("psk_file:") :])
            continue
        entry = CommentedMap()
        entry["address"] = r.name
        entry["key"] = refs.ref(secret_address(f"psk.{r.name}", "key"))
        psks.append(entry)
    if psk_files:
        doc["psk_file"] = psk_files
    if psks:
        doc["psks"] = psks
    pols = _policies(policies)
    if pols:
        doc["policies"] = pols
    sa_defaults = _defaults(ManualSa)
    sas = []
    for r in resources.get("sa", []):
        data = json.loads(r.data)
        s = _clean(data, sa_defaults)
        s["spi"] = data["spi"]
        for fname in ("encryption_key", "authentication_key"):
            if _has(r, fname, references):
                s[fname] = refs.ref(secret_address(f"sa.{r.name}", fname))
        sas.append(s)
    if sas:
        doc["manual_sas"] = sas
    header = "Exported by ipsecconf export. Secrets are references, never values."
    if refs.generated:
        header += "\nSet these environment variables before plan/apply (no reference was "
        header += "recorded for them):\n" + "\n".join(f"  {n}" for n in refs.generated)
    doc.yaml_set_start_comment(header)
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def _has(r: StoredResource, fname: str, references: RefLookup) -> bool:
    # Presence of the secret, not its reference: the lookup returns "" for a stored
    # secret without a recorded reference and None when there is no secret at all.
    return references(secret_address(f"{r.kind}.{r.name}", fname)) is not None
