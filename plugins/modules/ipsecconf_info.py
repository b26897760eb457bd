#!/usr/bin/python
# Copyright: ipsecconf contributors
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: read a node's IPsec state (SPD, SAD, certificates, counters, history)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ipsecconf_info
short_description: Read the IPsec state of a node kept by ipsecconf
version_added: "0.1.0"
description:
  - Returns what C(ipsecconf show) shows, as data - the security policies in SPD order
    with their index numbers, the security associations, the certificates, the counters
    and the apply history - together with the state's lineage and serial.
  - Reads only; secret values are never read, let alone returned.
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
      - The module only reads.
  diff_mode:
    support: none
    details:
      - The module changes nothing.
  platform:
    platforms: posix
options:
  state_path:
    description:
      - The state database on the managed node.
      - Defaults to C($IPSECCONF_STATE), else C(/var/lib/ipsecconf/state.db) for root
        and C(~/.local/state/ipsecconf/state.db) for other users.
    type: path
  gather:
    description:
      - What to read.
    type: list
    elements: str
    choices: [policies, sas, certs, stats, history]
    default: [policies, sas, certs, stats]
  kek:
    description:
      - The key-encryption key of the state database, when it has one
        (C($IPSECCONF_KEK) of the command line).
    type: str
notes:
  - When no state database exists yet, RV(exists) is V(false) and the lists are empty.
"""

EXAMPLES = r"""
- name: Read the SPD and the SAs of the node
  ipsecconf.ipsecconf.ipsecconf_info:
    gather: [policies, sas]
  register: ipsec

- name: Unmanaged policies (added with `ipsec policy add`)
  ansible.builtin.debug:
    msg: "{{ ipsec.policies | rejectattr('managed') | map(attribute='name') | list }}"
"""

RETURN = r"""
exists:
  description: Whether the state database exists.
  returned: always
  type: bool
  sample: true
state_path:
  description: The state database read.
  returned: always
  type: str
  sample: /var/lib/ipsecconf/state.db
lineage:
  description: The state's lineage (fixed when it was created).
  returned: when RV(exists) is true
  type: str
  sample: "d5b0728f-c837-40e2-af11-816ce0d1e179"
serial:
  description: The state's serial (bumped by every apply that changes it).
  returned: when RV(exists) is true
  type: int
  sample: 3
policies:
  description: SPD entries in SPD order, with C(index), C(name), C(managed) and their fields.
  returned: when gathered
  type: list
  elements: dict
  sample: [{"index": 1, "name": "web.out", "managed": true, "direction": "out",
            "protocol": "esp", "encryption": "aes128"}]
sas:
  description: SAD entries (state L, M, d or D as the seed's C(ipsec sa show)).
  returned: when gathered
  type: list
  elements: dict
  sample: []
certs:
  description: Certificates, public facts only (subject, issuer, validity, fingerprint).
  returned: when gathered
  type: list
  elements: dict
  sample: []
stats:
  description: Global counters and SA counts by state.
  returned: when gathered
  type: dict
  sample: {"counters": {}, "sas": 0, "sas_by_state": {}}
history:
  description: Applies, newest first.
  returned: when gathered
  type: list
  elements: dict
  sample: [{"id": 1, "serial": 1, "command": "ansible ipsecconf",
            "summary": "5 to add, 0 to change, 0 to destroy, 0 SAs affected"}]
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

IPSECCONF_IMPORT_ERROR = None
try:
    from ipsecconf.engine.service import Service, StoreBackend
    from ipsecconf.errors import IpsecconfError
    from ipsecconf.state import kek_material
    from ipsecconf.state import state_path as default_state_path
except ImportError:
    IPSECCONF_IMPORT_ERROR = traceback.format_exc()

SUBJECTS = ["policies", "sas", "certs", "stats", "history"]
EMPTY = {"policies": [], "sas": [], "certs": [], "stats": {}, "history": []}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state_path=dict(type="path"),
            gather=dict(
                type="list",
                elements="str",
                choices=SUBJECTS,
                default=["policies", "sas", "certs", "stats"],
            ),
            kek=dict(type="str", no_log=True),
        ),
        supports_check_mode=True,
    )
    if IPSECCONF_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("ipsecconf"), exception=IPSECCONF_IMPORT_ERROR)
    path = module.params["state_path"] or default_state_path(None)
    result = dict(changed=False, state_path=path, exists=os.path.exists(path))
    gather = module.params["gather"]
    if not result["exists"]:
        result.update((what, EMPTY[what]) for what in gather)
        module.exit_json(**result)
    kek = module.params["kek"]
    try:
        backend = StoreBackend(
            path, kek=kek.encode("utf-8") if kek else kek_material(), create=False
        )
    except IpsecconfError as exc:
        module.fail_json(msg=f"{type(exc).__name__}: {exc}", **result)
    try:
        snapshot = backend.snapshot()
        result.update(lineage=snapshot.lineage, serial=snapshot.serial)
        svc = Service(backend)
        for what in gather:
            result[what] = svc.show(what)
    except IpsecconfError as exc:
        module.fail_json(msg=f"{type(exc).__name__}: {exc}", **result)
    finally:
        backend.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
