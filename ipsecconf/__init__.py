"""ipsecconf: declarative IPsec for a node.

The package is layered (see DESIGN.md): ``errors`` and ``codec`` at the bottom, then
``model``, ``crypto``, the sans-IO protocol cores ``ike`` and ``esp``, ``config``,
``state``, ``plan``, ``engine``, ``io`` and finally ``cli``. Imports only go downward.
"""

__version__ = "0.1.0"
