"""Engine layer: the service interface (:mod:`.service`), apply (:mod:`.apply`), and the
running engine, sans-IO: :mod:`.runtime` (packets, time, reconfiguration) over
:mod:`.ikemgr`/:mod:`.ikeevents` (IKE SAs and what their events do), :mod:`.livecfg`
(the live tables from the store), :mod:`.records` (SAs and counters in the store) and
:mod:`.control` (the control API); it reaches I/O only through :mod:`.ports`, which
:mod:`ipsecconf.io` implements.
"""
