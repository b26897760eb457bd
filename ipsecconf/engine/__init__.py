"""Engine layer: the service interface (:mod:`.service`) and apply (:mod:`.apply`).

The running engine (IKE, dataplane) arrives with its own issue and plugs in behind
:class:`~ipsecconf.engine.service.Backend`.
"""
