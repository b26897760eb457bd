#!/usr/bin/python
# Copyright: ipsecconf contributors
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: plan and apply a node's whole IPsec desired state with ipsecconf."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ipsecconf
short_description: Plan and apply the IPsec desired state of a node with ipsecconf
version_added: "0.1.0"
description:
  - Makes the node's IPsec state (security policies, IKE peers, pre-shared keys,
    certificates, manual SAs) match a desired state written in ipsecconf's YAML, the
    way C(ipsecconf apply) does, in one transaction (all or nothing).
  - The desired state comes from files on the managed node (O(src)) or inline (O(config)).
  - Fields that cannot change in place (selectors, protocol, mode) are planned as a
    replacement, never refused; a rotated secret shows as a change without its value.
  - In check mode the module only plans and reports C(changed) exactly when the plan has
    changes. In diff mode it returns the before and after of every changed resource,
    with secret fields masked.
  - Secret values never appear in the plan, the diff, the result or an error message.
author:
  - ipsecconf contributors (@ipsecconf)
requirements:
  - ipsecconf (the Python package, importable by the module's interpreter on the managed node)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Runs the planner against the node's state and changes nothing; not even an
        absent state database is created.
  diff_mode:
    support: full
    details:
      - One diff per changed resource, secret fields shown as V((sensitive value)) and
        V((sensitive value changed)).
  platform:
    platforms: posix
options:
  src:
    description:
      - Files or directories on the managed node holding the desired state.
      - A directory contributes every C(*.yaml), C(*.yml) and C(*.j2) file below it, in
        sorted order.
      - Exactly one of O(src) and O(config) is required when O(state=present).
      - Give absolute paths; relative ones are relative to the module's working
        directory on the node.
    type: list
    elements: path
  config:
    description:
      - The desired state inline, as a mapping with the same keys as an ipsecconf YAML
        file (C(peers), C(psks), C(policies), C(manual_sas), C(certificates), ...).
      - It is written to a private temporary file on the managed node and removed
        afterwards; diagnostics name it C(<config>), with the line of that rendering.
      - Relative C(file:) references in it are relative to that temporary directory,
        so give absolute paths.
      - Write secrets as C(env:NAME) references and pass their values in O(secrets); a
        literal secret written here would show in the task's C(invocation) when the
        configuration fails to load (once it loads, Ansible masks every resolved secret
        value in the output).
    type: dict
  state:
    description:
      - V(present) makes the node's state match the desired state.
      - V(absent) removes every entry ipsecconf manages (and, with O(prune=true), the
        unmanaged ones too). O(src) and O(config) must not be given then.
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - Also delete entries that ipsecconf does not manage (created imperatively with
        C(ipsec policy add)). Without it they are left in place and reported as drift.
    type: bool
    default: false
  state_path:
    description:
      - The state database on the managed node.
      - Defaults to C($IPSECCONF_STATE), else C(/var/lib/ipsecconf/state.db) for root
        and C(~/.local/state/ipsecconf/state.db) for other users.
    type: path
  variables:
    description:
      - Template variables for C(*.j2) files and files holding Jinja2 syntax (the
        C(--var) options of the command line; they win over O(vars_files) and C(vars:)).
      - Use C(!unsafe) or C({% raw %}) in a playbook to keep Ansible from rendering
        ipsecconf's own templates.
    type: dict
  vars_files:
    description:
      - YAML files of template variables on the managed node (C(--vars-file)).
    type: list
    elements: path
  secrets:
    description:
      - Values for the C(env:NAME) secret references of the desired state, by NAME
        (pre-shared keys, private keys, manual SA keys), typically from Ansible Vault.
      - They are set in the module's own environment only, never logged or returned.
    type: dict
  kek:
    description:
      - The key-encryption key that seals the secrets kept in the state database
        (C($IPSECCONF_KEK) of the command line).
    type: str
  strict:
    description:
      - Fail on warnings too (weak algorithms, shadowed policies, secrets written into
        the YAML).
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for another apply holding the state lock.
    type: float
    default: 30.0
notes:
  - A saved plan of C(ipsecconf plan --out) is not accepted here; the module always plans
    and applies under the state lock, so what it applies is what it planned.
"""

EXAMPLES = r"""
- name: Apply the IPsec desired state kept in /etc/ipsecconf
  ipsecconf.ipsecconf.ipsecconf:
    src:
      - /etc/ipsecconf
    secrets:
      HOST_B_PSK: "{{ vault_host_b_psk }}"

- name: Show what would change (run with --check --diff)
  ipsecconf.ipsecconf.ipsecconf:
    src: /etc/ipsecconf/ipsec.yaml
    secrets:
      HOST_B_PSK: "{{ vault_host_b_psk }}"
  check_mode: true
  register: ipsec_plan

- name: An inline desired state, removing unmanaged entries
  ipsecconf.ipsecconf.ipsecconf:
    state_path: /var/lib/ipsecconf/state.db
    prune: true
    config:
      peers:
        - name: host-b
          address: 198.51.100.2
          psk: env:HOST_B_PSK
      policies:
        - name: host-b
          source: 198.51.100.1/32
          destination: 198.51.100.2/32
          protocol: esp
          encryption: aes256gcm
          authentication: none
          level: restrict
          peer: host-b
    secrets:
      HOST_B_PSK: "{{ vault_host_b_psk }}"

- name: Remove everything ipsecconf manages on the node
  ipsecconf.ipsecconf.ipsecconf:
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the plan had changes (in check mode), or they were applied.
  returned: always
  type: bool
  sample: true
msg:
  description: The plan's summary line, or what the apply did.
  returned: always
  type: str
  sample: "Apply complete: 1 to add, 0 to change, 0 to destroy, 0 SAs affected"
summary:
  description: The counts of the plan.
  returned: success
  type: dict
  contains:
    add:
      description: Resources to create (a replacement counts here and in RV(summary.destroy)).
      type: int
    change:
      description: Resources to update in place (a rotated secret counts here).
      type: int
    destroy:
      description: Resources to delete.
      type: int
    adopt:
      description: Unmanaged entries taken over by matching desired ones.
      type: int
    sas_affected:
      description: Live SAs that the changes tear down.
      type: int
    unchanged:
      description: Resources already as desired.
      type: int
    drift:
      description: Unmanaged entries left in place (deleted only with O(prune=true)).
      type: int
  sample: {"add": 2, "change": 0, "destroy": 0, "adopt": 0, "sas_affected": 0,
           "unchanged": 3, "drift": 0}
plan:
  description:
    - The plan as ipsecconf's versioned JSON (C(ipsecconf plan --json), see
      C(schemas/plan.schema.json)); C(resource_changes[].change.actions) as in Terraform.
    - Secret fields appear only in the C(before_sensitive)/C(after_sensitive) masks,
      never with a value.
  returned: success
  type: dict
  sample: {"format_version": "1.0", "serial": 3, "has_changes": true,
           "resource_changes": [{"address": "psk.203.0.113.7",
                                 "change": {"actions": ["update"],
                                            "before_sensitive": {"key": true}}}]}
serial:
  description: The state's serial after the run (unchanged in check mode).
  returned: success
  type: int
  sample: 4
lineage:
  description: The state's lineage; empty in check mode when the state does not exist yet.
  returned: success
  type: str
  sample: "d5b0728f-c837-40e2-af11-816ce0d1e179"
state_path:
  description: The state database used.
  returned: always
  type: str
  sample: /var/lib/ipsecconf/state.db
sas_torn_down:
  description: Live SAs the apply tore down.
  returned: when changes were applied
  type: int
  sample: 0
diagnostics:
  description:
    - The findings about the desired state (warnings on success; errors and warnings
      when it is invalid), each with its file, line and column.
  returned: always
  type: list
  elements: dict
  sample: [{"severity": "error", "path": "/etc/ipsecconf/ipsec.yaml", "line": 12,
            "column": 18, "message": "destination: invalid address or prefix 'nope'"}]
"""

import json
import os
import re
import shutil
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.ipsecconf.ipsecconf.plugins.module_utils.plan_diff import (
    diagnostic_text,
    diff_entries,
    rename_path,
    summary_line,
)

IPSECCONF_IMPORT_ERROR = None
try:
    from ipsecconf.engine.service import Service, StoreBackend
    from ipsecconf.errors import ConfigError, IpsecconfError
    from ipsecconf.plan import render_json
    from ipsecconf.plan.planfile import Inputs
    from ipsecconf.state import kek_material
    from ipsecconf.state import state_path as default_state_path
except ImportError:
    IPSECCONF_IMPORT_ERROR = traceback.format_exc()

INLINE_NAME = "<config>"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def argument_spec():
    return dict(
        src=dict(type="list", elements="path"),
        config=dict(type="dict"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        prune=dict(type="bool", default=False),
        state_path=dict(type="path"),
        variables=dict(type="dict"),
        vars_files=dict(type="list", elements="path"),
        secrets=dict(type="dict", no_log=True),
        kek=dict(type="str", no_log=True),
        strict=dict(type="bool", default=False),
        lock_timeout=dict(type="float", default=30.0),
    )


class Run:
    """One invocation: inputs on disk, the service, and the result being built."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.workdir = tempfile.mkdtemp(prefix="ipsecconf-ansible-")
        self.inline_path = None
        self.result = dict(changed=False, diagnostics=[])
        self.warned = False

    def close(self):
        shutil.rmtree(self.workdir, ignore_errors=True)

    def fail(self, msg, **extra):
        self.close()
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    # -- inputs --------------------------------------------------------------------

    def paths(self):
        p = self.params
        if p["state"] == "absent":
            if p["src"] or p["config"] is not None:
                self.fail("state=absent takes neither src nor config")
            return [self._write_inline({})]
        if p["config"] is not None:
            return [self._write_inline(p["config"])]
        return list(p["src"])

    def _write_inline(self, data):
        # JSON is YAML; one key a line keeps diagnostics' line numbers meaningful.
        path = os.path.join(self.workdir, "config.yaml")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        self.inline_path = path
        return path

    def export_secrets(self):
        for name, value in (self.params["secrets"] or {}).items():
            if not ENV_NAME.match(str(name)):
                self.fail(f"secrets: {name!r} is not a valid env: reference name")
            if value is None or str(value) == "":
                self.fail(f"secrets: the value of {name} is empty")
            os.environ[str(name)] = str(value)

    def diagnostics(self, diags):
        out = [d.as_dict() for d in diags]
        if self.inline_path:
            out = rename_path(out, self.inline_path, INLINE_NAME)
        return out

    # -- the service ---------------------------------------------------------------

    def backend(self, path):
        kek = self.params["kek"]
        # As the command line: the option, else $IPSECCONF_KEK_FILE / $IPSECCONF_KEK.
        kek_bytes = kek.encode("utf-8") if kek else kek_material()
        return StoreBackend(path, kek=kek_bytes)

    def plan(self, svc, inputs):
        try:
            planned = svc.plan(inputs)
        except ConfigError as exc:
            diags = self.diagnostics(exc.diagnostics)
            errors = [d for d in diags if d["severity"] == "error"]
            lines = "\n".join(diagnostic_text(d) for d in errors or diags)
            self.fail(
                f"invalid desired state ({len(errors)} error{'s' if len(errors) != 1 else ''}):"
                f"\n{lines}",
                diagnostics=diags,
            )
        # Defence in depth: every secret value the desired state resolved (env:, file:
        # and literals) is masked by Ansible wherever it might show, as no_log values are.
        found = planned.load.secrets
        for value in [*found.values.values(), *found.psk_by_address.values()]:
            text = value.decode("utf-8", "replace").strip()
            if text:
                self.module.no_log_values.add(text)
        warnings = self.diagnostics(planned.load.warnings)
        self.result["diagnostics"] = warnings
        if self.params["strict"] and warnings:
            self.fail(
                "warnings are errors with strict=true:\n"
                + "\n".join(diagnostic_text(d) for d in warnings)
            )
        if not self.warned:
            # The same inputs may be planned twice (a first apply); warn once.
            self.warned = True
            for d in warnings:
                self.module.warn(diagnostic_text(d))
        return planned

    def report(self, planned, exists):
        doc = render_json.render(planned.plan)
        if not exists:
            doc["lineage"] = ""
        summary = dict(doc["summary"], drift=len(doc["drift"]))
        self.result.update(
            plan=doc,
            summary=summary,
            serial=doc["serial"],
            lineage=doc["lineage"],
            changed=bool(doc["has_changes"]),
        )
        if self.module._diff:
            self.result["diff"] = diff_entries(doc)
        self.result["msg"] = "Plan: " + summary_line(summary)
        if doc["drift"] and not self.params["prune"]:
            self.module.warn(
                f"{len(doc['drift'])} unmanaged entries left in place (prune=true deletes "
                "them): " + ", ".join(d["address"] for d in doc["drift"])
            )
        return self.result

    def run(self):
        p = self.params
        path = p["state_path"] or default_state_path(None)
        self.result["state_path"] = path
        paths = self.paths()
        self.export_secrets()
        inputs = Inputs.make(
            paths, dict(p["variables"] or {}), list(p["vars_files"] or []), p["prune"]
        )
        if not os.path.exists(path):
            # Plan against an empty state in the work directory first: check mode and an
            # invalid desired state leave no state database behind.
            empty = self.backend(os.path.join(self.workdir, "empty.db"))
            try:
                planned = self.plan(Service(empty), inputs)
            finally:
                empty.close()
            if self.module.check_mode:
                return self.report(planned, exists=False)
        elif self.module.check_mode:
            backend = self.backend(path)
            try:
                return self.report(self.plan(Service(backend), inputs), exists=True)
            finally:
                backend.close()
        backend = self.backend(path)
        svc = Service(backend)
        try:
            with backend.lock(p["lock_timeout"], "ansible ipsecconf"):
                planned = self.plan(svc, inputs)
                self.report(planned, exists=True)
                if not planned.plan.has_changes:
                    self.result["msg"] = "Apply complete: nothing to do"
                    return self.result
                outcome = svc.apply(planned, command="ansible ipsecconf")
        finally:
            backend.close()
        self.result.update(serial=outcome.serial, sas_torn_down=outcome.sas_torn_down)
        self.result["msg"] = "Apply complete: " + summary_line(self.result["summary"])
        return self.result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("src", "config")],
        required_if=[("state", "present", ("src", "config"), True)],
        supports_check_mode=True,
    )
    if IPSECCONF_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("ipsecconf"), exception=IPSECCONF_IMPORT_ERROR)
    run = Run(module)
    try:
        result = run.run()
    except IpsecconfError as exc:
        # ipsecconf's messages name references, paths and lock holders, never secrets.
        run.fail(f"{type(exc).__name__}: {exc}")
    except OSError as exc:
        run.fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    run.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
