"""The inbound tunnel fast paths (AEAD, and CBC with an HMAC) give what the general path
gives -- the packet or the typed error, the replay window, the counters, the lifetime
events -- for good, replayed, too-old, forged, short, unaligned and badly padded packets,
directly in IP or in UDP, under either outer IP version."""

from __future__ import annotations

import dataclasses
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecconf.crypto.transforms import EspCbc
from ipsecconf.esp import ip
from ipsecconf.esp.processor import Deliver, Drop, Processor
from ipsecconf.esp.sa import Lifetimes, SecurityAssociation
from ipsecconf.esp.sad import SaTable
from ipsecconf.esp.spd import Direction, PolicyTable

from .helpers import ESP_SUITES, packed, packet_for, sa_pair

AEAD = ESP_SUITES[:3]
CBC = [ESP_SUITES[3], ESP_SUITES[6], ESP_SUITES[7]]  # aes128/sha256, 3des/sha1, des/md5
FAST = AEAD + CBC


def _twins(
    suite: tuple[str, str | None, str], udp: bool, version: int = 4, **kw: object
) -> tuple[SecurityAssociation, SecurityAssociation, SecurityAssociation]:
    """An outbound SA and two inbound SAs with its keys: the second one only ever uses the
    general path."""
    out, fast = sa_pair(suite, "tunnel", version, udp=udp, **kw)
    keys = dict(enc_key=out.config.enc_key, integ_key=out.config.integ_key)
    _, general = sa_pair(suite, "tunnel", version, udp=udp, **keys, **kw)
    general.decapsulate = general.decapsulate_general
    return out, fast, general


def _result(sa: SecurityAssociation, packet: bytes, now: float = 0.0) -> object:
    try:
        return sa.decapsulate(packet, ip.parse(packet), now)
    except Exception as exc:  # compare the failure itself across paths
        return repr(exc)


def _state(sa: SecurityAssociation) -> tuple[object, ...]:
    w = sa.esp_context.replay
    return (w.top, w.bitmap, sa.state, sa.counters.as_dict(), list(sa.events))


def _outer(out: SecurityAssociation, esp: bytes, udp: bool) -> bytes:
    """``esp`` behind the outer headers of ``out``'s packets."""
    if udp:
        esp = struct.pack("!HHHH", 4500, 4500, 8 + len(esp), 0) + esp
    proto = ip.PROTO_UDP if udp else ip.PROTO_ESP
    src, dst = packed(out.config.src), packed(out.config.dst)
    if out.outer_header.version == 6:
        return ip.ipv6_header(src, dst, proto, len(esp)) + esp
    return ip.ipv4_header(src, dst, proto, len(esp), df=True) + esp


def _sealed(out: SecurityAssociation, plaintext: bytes, udp: bool) -> bytes:
    """A tunnel packet whose ESP plaintext (payload, padding, pad length, next header) is
    given as is, with a valid ICV: for padding and next-header errors behind the ICV."""
    ctx = out.esp_context
    ctx.seq += 1
    seq = ctx.seq
    hdr = struct.pack("!II", ctx.spi, seq)
    if ctx.cbc is None:
        iv = seq.to_bytes(8, "big")
        return _outer(out, hdr + iv + ctx.aead_encrypt(ctx.aead_salt + iv, plaintext, hdr), udp)
    assert ctx.hmac is not None
    body = hdr + os.urandom(ctx.cbc.block)
    body += ctx.cbc.encrypt_with_iv(body[8:], plaintext)
    return _outer(out, body + ctx.hmac.compute(body), udp)


def _cut(wire: bytes, n: int) -> bytes:
    """``wire`` without its last ``n`` bytes, the outer length fields fixed (an ICV or a
    ciphertext cut short, not a broken IP packet)."""
    cut = bytearray(wire[: len(wire) - n])
    if cut[0] >> 4 == 4:
        cut[2:4] = len(cut).to_bytes(2, "big")
    else:
        cut[4:6] = (len(cut) - 40).to_bytes(2, "big")
    return bytes(cut)


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("udp", [False, True])
@pytest.mark.parametrize("suite", FAST)
def test_fast_decapsulation_equals_the_general_path(suite, udp: bool, version: int) -> None:
    out, fast, general = _twins(suite, udp, version, replay_window=32)
    assert fast.decapsulate != fast.decapsulate_general
    clear = [packet_for("tunnel", 4, os.urandom(n), df=True) for n in range(0, 60, 5)]
    clear.append(packet_for("tunnel", 6, b"v6 inner"))
    wires = [out.encapsulate(p, 0.0) for p in clear]
    # Held back until their forged copies were rejected.
    held = [out.encapsulate(p, 0.0) for p in clear[:3]]
    forged_icv = bytearray(held[0])
    forged_icv[-1] ^= 1
    forged_text = bytearray(held[1])
    forged_text[len(forged_text) // 2] ^= 0x80
    # 16 bytes of inner packet + trailer: whole blocks for every cipher.
    inner = packet_for("tunnel", 4, bytes(16), df=True)
    pad14 = bytes(range(1, 15))
    bad = [
        _sealed(out, inner + b"\x01\x02\x02\x04", udp),  # good, by hand
        _sealed(out, inner + b"\x01\x03\x02\x04", udp),  # padding not 1, 2
        _sealed(out, inner + b"\x01\x02\x09\x04", udp),  # pad length 9, padding bytes wrong
        _sealed(out, pad14 + b"\xf0\x04", udp),  # pad length past the payload
        _sealed(out, inner + b"\x01\x02\x02\x06", udp),  # TCP in tunnel mode
        _sealed(out, pad14 + b"\x0e\x3b", udp),  # dummy packet (next header 59)
    ]
    malformed = [
        _cut(wires[0], 40),  # too short for a block of ciphertext
        _cut(wires[0], len(wires[0]) - (40 if version == 6 else 20) - 8 * udp - 8),  # header
        _cut(wires[1], 1),  # unaligned ciphertext
        _cut(held[2], 16),  # whole blocks short: the ICV does not verify
    ]
    probe = (
        wires[5:]  # in order
        + wires[:5]  # older but in the window
        + [wires[7], wires[0]]  # replayed
        + [bytes(forged_icv), bytes(forged_text)]
        + malformed
        + bad
        + held  # the genuine packets after their forged copies
    )
    got = [_result(fast, p) for p in probe]
    assert got == [_result(general, p) for p in probe]
    assert got[: len(clear)] == clear[5:] + clear[:5]
    assert got[-3:] == clear[:3]
    errors = {r.split("(")[0] for r in got if isinstance(r, str)}
    assert errors == {"ReplayError", "IntegrityError", "DecodeError", "EspError"}
    assert _state(fast) == _state(general)
    # Far ahead: the window slides; everything older than it is too old.
    out.esp_context.seq += 100
    late = [out.encapsulate(clear[0], 0.0), wires[1]]
    assert [_result(fast, p) for p in late] == [_result(general, p) for p in late]
    assert _state(fast) == _state(general)


def test_cbc_verifies_the_icv_before_decrypting_and_decrypts_once(monkeypatch) -> None:
    calls: list[int] = []
    decrypt = EspCbc.decrypt

    def spy(self: EspCbc, data: bytes) -> bytes:
        calls.append(len(data))
        return decrypt(self, data)

    monkeypatch.setattr(EspCbc, "decrypt", spy)
    out, fast, _ = _twins(CBC[0], True)
    wire = out.encapsulate(packet_for("tunnel", 4, b"once", df=True), 0.0)
    forged = bytearray(wire)
    forged[-1] ^= 1
    assert "IntegrityError" in str(_result(fast, bytes(forged)))
    assert calls == []  # a forged packet is never decrypted
    assert _result(fast, wire) == packet_for("tunnel", 4, b"once", df=True)
    assert len(calls) == 1  # the fast path, not the general one after it


@pytest.mark.parametrize("suite", [AEAD[0], CBC[0]])
def test_window_off_accepts_replays_but_never_sequence_zero(suite) -> None:
    out, fast, general = _twins(suite, False, replay_window=0, manual=True)
    wire = out.encapsulate(packet_for("tunnel", 4, b"x", df=True), 0.0)
    zero = bytearray(wire)
    zero[24:28] = bytes(4)
    probe = [wire, wire, bytes(zero)]
    assert [_result(fast, p) for p in probe] == [_result(general, p) for p in probe]
    assert _state(fast) == _state(general)


@pytest.mark.parametrize("suite", [AEAD[0], CBC[0], CBC[2]])
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 200), min_size=1, max_size=25),
    st.integers(0, 12),
    st.integers(0, 20),
    st.integers(0, 3000),
    st.integers(0, 6000),
)
def test_fast_decapsulation_equals_general_under_lifetimes(
    suite, sizes, soft_p, hard_p, soft_b, hard_b
):
    lt = Lifetimes(
        soft_packets=soft_p,
        hard_packets=soft_p + hard_p if hard_p else 0,
        soft_bytes=soft_b,
        hard_bytes=soft_b + hard_b if hard_b else 0,
    )
    out, fast, general = _twins(suite, False, lifetimes=lt)
    keys = dict(enc_key=out.config.enc_key, integ_key=out.config.integ_key)
    big, _ = sa_pair(suite, "tunnel", 4, **keys)  # no lifetimes
    wires = [big.encapsulate(packet_for("tunnel", 4, bytes(n), df=True), 0.0) for n in sizes]
    assert [_result(fast, w) for w in wires] == [_result(general, w) for w in wires]
    assert _state(fast) == _state(general)


@pytest.mark.parametrize("suite", [AEAD[0], CBC[0]])
def test_esp_in_udp_payloads_through_the_processor(suite) -> None:
    # The engine hands the processor the payload of the port-4500 socket (RFC 3948).
    out, inn = sa_pair(suite, "tunnel", 4, udp=True)
    sad = SaTable(os.urandom)
    sad.add(inn.config, 0.0)
    proc = Processor(sad, PolicyTable([]))
    clear = packet_for("tunnel", 4, b"through NAT", df=True)
    wire = out.encapsulate(clear, 0.0)
    info = ip.parse(wire)
    payload = wire[info.l4 + 8 :]
    assert proc.inbound_esp_in_udp(payload, 4, info.src, info.dst, 0.0) == Deliver(clear, 0x10001)
    again = proc.inbound_esp_in_udp(payload, 4, info.src, info.dst, 0.0)
    assert isinstance(again, Drop) and again.reason.value == "replayed"
    assert proc.inbound(out.encapsulate(clear, 0.0), 0.0) == Deliver(clear, 0x10001)


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.sampled_from(["good", "good", "good", "replay", "forged", "second", "unknown", "short"]),
        min_size=1,
        max_size=30,
    ),
    hard=st.integers(0, 25),
)
def test_a_receive_processed_as_a_batch_equals_one_by_one(ops: list[str], hard: int) -> None:
    # Two processors with the same two SAs: one takes the datagrams of a receive as a batch,
    # the other one at a time; outcomes, counters and SA state must be the same, across
    # replays, forgeries, an SA switch, unknown SPIs, runts and an SA dying mid-batch.
    lt = Lifetimes(hard_packets=hard)
    out1, _ = sa_pair(AEAD[0], "tunnel", 4, udp=True)
    out2, _ = sa_pair(AEAD[0], "tunnel", 4, udp=True, spi=0x20002)
    procs = []
    for _ in range(2):
        sad = SaTable(os.urandom)
        for out in (out1, out2):
            cfg = dataclasses.replace(out.config, direction=Direction.IN, lifetimes=lt)
            sad.add(cfg, 0.0)
        procs.append(Processor(sad, PolicyTable([])))
    clear = packet_for("tunnel", 4, b"batch", df=True)
    payloads: list[bytes] = []
    for op in ops:
        wire = (out2 if op == "second" else out1).encapsulate(clear, 0.0)
        payload = wire[28:]
        if op == "replay" and payloads:
            payload = payloads[-1]
        elif op == "forged":
            payload = payload[:-1] + bytes([payload[-1] ^ 1])
        elif op == "unknown":
            payload = b"\0\0\x99\x99" + payload[4:]
        elif op == "short":
            payload = payload[:6]
        payloads.append(payload)
    src, dst = out1.outer_header.atomic_v4()[3:]
    batch, single = procs
    clear_b, rest_b = batch.inbound_esp_in_udp_batch(payloads, 4, src, dst, 1.0)
    results = [(p, single.inbound_esp_in_udp(p, 4, src, dst, 1.0)) for p in payloads]
    assert clear_b == [r.packet for _, r in results if isinstance(r, Deliver)]
    assert rest_b == [(p, r) for p, r in results if not isinstance(r, Deliver)]
    assert batch.counters.as_dict() == single.counters.as_dict()
    assert batch.drops == single.drops
    states = [[(sa.state, sa.counters.as_dict()) for sa in p.sad] for p in procs]
    assert states[0] == states[1]
