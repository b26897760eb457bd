"""io layer: the asyncio adapters of the engine's ports -- the daemon (:mod:`.daemon`),
the TUN device (:mod:`.tun`), the marked sockets (:mod:`.sockets`), routes, rules and
nftables (:mod:`.hostnet`), the control socket (:mod:`.control`, :mod:`.client`) and the
log format (:mod:`.logfmt`)."""
