"""The sans-IO ESP/AH dataplane: bytes and ``now`` in, result values out.

Public entry points: :mod:`ipsecconf.esp.api` (one SA, encapsulate/decapsulate),
:class:`ipsecconf.esp.processor.Processor` over :class:`ipsecconf.esp.sad.SaTable` and
:class:`ipsecconf.esp.spd.PolicyTable`.  No sockets, clock or RNG of its own.
"""
