"""ESP context: published ESP packets (known answers), ESN, ICV-before-decrypt, padding
checks and sequence exhaustion."""

from __future__ import annotations

import os

import pytest

from ipsecconf.esp import ip
from ipsecconf.esp.context import EspContext
from ipsecconf.esp.errors import DropReason, EspError, SaConfigError
from ipsecconf.model.algorithms import cipher, integrity

h = bytes.fromhex


def _hx(*parts: str) -> bytes:
    return h("".join(parts))


# draft-mcgrew-gcm-test-01 section 4 "Test Cases" (pages 6-10 and 13): AES-GCM-ESP.
# (cipher, key, salt, spi, seq, esn, iv, ESP plaintext incl. trailer, complete ESP packet)
GCM_CASES = [
    (  # page 6: 128-bit key, 64-bit ESN
        "aes128gcm",
        "4c80cdefbb5d10da906ac73c3613a634",
        "2e443b68",
        0x00004321,
        0x8765432100000000,
        True,
        "4956ed7e3b244cfe",
        _hx(
            "45000048699a000080114db7c0a80102",
            "c0a801010a9bf15638d3010000010000",
            "00000000045f736970045f7564700373",
            "69700963796265726369747902646b00",
            "0021000101020201",
        ),
        _hx(
            "00004321000000004956ed7e3b244cfe",
            "fecf537e729d5b07dc30df528dd22b76",
            "8d1b98736696a6fd348509fa13ceac34",
            "cfa2436f14a3f3cf65925bf1f4a13c5d",
            "15b21e1884f5ff6247aeabb786b93bce",
            "61bc17d768fd9732459018148f6cbe72",
            "2fd04796562dfdb4",
        ),
    ),
    (  # page 7: 128-bit key, 32-bit sequence number
        "aes128gcm",
        "feffe9928665731c6d6a8f9467308308",
        "cafebabe",
        0x0000A5F8,
        0x0000000A,
        False,
        "facedbaddecaf888",
        _hx(
            "4500003e698f000080114dccc0a80102",
            "c0a801010a980035002a2343b2d00100",
            "00010000000000000373697009637962",
            "65726369747902646b00000100010001",
        ),
        _hx(
            "0000a5f80000000afacedbaddecaf888",
            "deb22cd9b07c72c16e3a65beeb8df304",
            "a5a5897d33ae530f1ba76d5d114d2a5c",
            "3de81827c10e9a4f51330d0eec416642",
            "cfbb85a5b47e48a4ec3b9ba95d918bd1",
            "83b70d3aa8bc6ee4c309e9d85a41ad4a",
        ),
    ),
    (  # page 8: 256-bit key
        "aes256gcm",
        "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        "11223344",
        0x4A2CBFE3,
        0x00000002,
        False,
        "0102030405060708",
        _hx(
            "4500003069a6400080062690c0a80102",
            "9389155e0a9e008b2dc57ee000000000",
            "7002400020bf0000020405b401010402",
            "01020201",
        ),
        _hx(
            "4a2cbfe3000000020102030405060708",
            "ff425c9b724599df7a3bcd510194e00d",
            "6a78107f1b0b1cbf06efae9d65a5d763",
            "748a637985771d347f0545659f14e99d",
            "ef842d8eb335f4eecfdbf831824b4c49",
            "15956c96",
        ),
    ),
    (  # page 9: all-zero key and salt
        "aes128gcm",
        "00000000000000000000000000000000",
        "00000000",
        0x00000000,
        0x00000001,
        False,
        "0000000000000000",
        _hx(
            "4500003c99c500008001cb7a40679318",
            "010101010800075c0200440061626364",
            "65666768696a6b6c6d6e6f7071727374",
            "75767761626364656667686901020201",
        ),
        _hx(
            "00000000000000010000000000000000",
            "4688daf2f973a392732909c331d56d60",
            "f694abaa414b5e7ff5fdcdfff5e9a284",
            "456476492719ffb64de7d9dca1e1d894",
            "bc3bd57873ed4d181d19d4d5c8c18af3",
            "f821d496eeb096e98ad2b69e4799c71d",
        ),
    ),
    (  # page 10: 64-bit ESN
        "aes128gcm",
        "3de09874b388e6491988d0c3607eae1f",
        "57690e43",
        0x42F67E3F,
        0x1010101010101010,
        True,
        "4e280000a2fca1a3",
        _hx(
            "4500003c99c300008001cb7c40679318",
            "010101010800085c0200430061626364",
            "65666768696a6b6c6d6e6f7071727374",
            "75767761626364656667686901020201",
        ),
        _hx(
            "42f67e3f101010104e280000a2fca1a3",
            "fba2caa4853cf9f0f22cb10d86dd83b0",
            "fec75691cf1a04b00d1138ec9c357917",
            "65acbd8701ad79845bf9fe3fba487bc9",
            "1755e6662b4c8d0d1f5e22739530320a",
            "e0d731cc978ecafaeae88f00e80d6e48",
        ),
    ),
    (  # page 13: 256-bit key, 64-bit ESN
        "aes256gcm",
        "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        "73616c74",
        0x17405E67,
        0x156F3126DD0DB99B,
        True,
        "616e640169766563",
        _hx(
            "45080028732c00004006e9f90a010612",
            "0a01038f06b88023dd6bafbecb712602",
            "50101f646d540001",
        ),
        _hx(
            "17405e67dd0db99b616e640169766563",
            "f2d69ecdbd5a0d5b8d5ef38bad4da58d",
            "1f278fde98ef67549d524a3018d9a57f",
            "f4d3a31ce673119e451626c2415771e3",
            "b7eebca614c89b35",
        ),
    ),
]


def _ctx(word: str, key: bytes, spi: int, esn: bool, integ: str = "none", ikey: bytes = b""):
    return EspContext(spi, cipher(word), key, integrity(integ), ikey, rng=os.urandom, esn=esn)


@pytest.mark.parametrize("case", GCM_CASES, ids=lambda c: f"spi{c[3]:08x}")
def test_aes_gcm_esp_draft_mcgrew_gcm_test_01(case: tuple) -> None:
    word, key, salt, spi, seq, esn, iv, plaintext, packet = case
    padlen, nh = plaintext[-2], plaintext[-1]
    payload = plaintext[: len(plaintext) - 2 - padlen]
    sender = _ctx(word, h(key + salt), spi, esn)
    assert sender.seal_with(seq, h(iv), payload, nh) == packet
    receiver = _ctx(word, h(key + salt), spi, esn)
    receiver.replay.top = seq - 1  # the receiver has seen everything before this packet
    data, got_nh, got_seq = receiver.open(packet)
    assert (data, got_nh, got_seq) == (payload, nh, seq)


# RFC 3602 section 4, Case #5: sample transport-mode ESP packet (ping 192.168.123.100),
# AES-CBC-128, no authentication, SPI 4321, sequence number 1.
RFC3602_CASE5_KEY = h("90d382b410eeba7ad938c46cec1a82bf")
RFC3602_CASE5_IV = h("e96e8c08ab465763fd098d45dd3ff893")
RFC3602_CASE5_IP = h("4500005408f200004001f9fec0a87b03c0a87b64")
RFC3602_CASE5_DATA = _hx(
    "08000ebda70a00008e9c083db95b0700",
    "08090a0b0c0d0e0f1011121314151617",
    "18191a1b1c1d1e1f2021222324252627",
    "28292a2b2c2d2e2f3031323334353637",
)
RFC3602_CASE5_OUT_IP = h("4500007c08f2000040 32f9a5c0a87b03c0a87b64".replace(" ", ""))
RFC3602_CASE5_ENCRYPTED = _hx(
    "f663c25d325c18c6a9453e194e120849",
    "a4870b66cc6b9965330013b4898dc856",
    "a4699e523a55db080b59ec3a8e4b7e52",
    "775b07d1db34ed9c538ab50c551b874a",
    "a269add047ad2d5913ac19b7cfbad4a6",
)


def test_aes_cbc_esp_transport_rfc3602_case5() -> None:
    ctx = _ctx("aes128", RFC3602_CASE5_KEY, 0x4321, False)
    esp = ctx.seal_with(1, RFC3602_CASE5_IV, RFC3602_CASE5_DATA, 1)
    assert esp == h("0000432100000001") + RFC3602_CASE5_IV + RFC3602_CASE5_ENCRYPTED
    clear = RFC3602_CASE5_IP + RFC3602_CASE5_DATA
    info = ip.parse(clear)
    outer = ip.rewrite_header(clear[: info.split], info, ip.PROTO_ESP, len(esp))
    assert outer == RFC3602_CASE5_OUT_IP
    rx = _ctx("aes128", RFC3602_CASE5_KEY, 0x4321, False)
    assert rx.open(esp) == (RFC3602_CASE5_DATA, 1, 1)


def _pair(word: str, integ: str, esn: bool = False) -> tuple[EspContext, EspContext]:
    c, i = cipher(word), integrity(integ)
    k, ik = os.urandom(c.key_bytes), os.urandom(i.key_bytes)
    return _ctx(word, k, 0x1234, esn, integ, ik), _ctx(word, k, 0x1234, esn, integ, ik)


def test_icv_is_checked_before_decryption_and_before_the_window_moves() -> None:
    tx, rx = _pair("aes128", "sha256")
    pkt = bytearray(tx.seal(b"x" * 40, 4))
    pkt[20] ^= 0x80  # ciphertext bit: CBC would decrypt garbage, the ICV must catch it
    with pytest.raises(EspError) as exc:
        rx.open(bytes(pkt))
    assert exc.value.reason is DropReason.INTEGRITY_FAILED
    assert rx.replay.top == 0


def test_bad_padding_is_rejected_after_authentication() -> None:
    tx, rx = _pair("null", "sha256")
    # Build an authentic packet whose padding is not 1, 2, 3 (NULL cipher: plaintext visible).
    body = tx.seal_with(1, b"", b"abc", 4)
    raw = bytearray(body[:-16])
    raw[8 + 3] = 9  # first padding byte should be 1
    forged = bytes(raw) + tx._hmac.compute(bytes(raw))  # type: ignore[union-attr]
    with pytest.raises(EspError) as exc:
        rx.open(forged)
    assert exc.value.reason is DropReason.BAD_PADDING


def test_esn_high_bits_are_authenticated_but_not_sent() -> None:
    tx, rx = _pair("aes128", "sha1", esn=True)
    tx.seq = (7 << 32) + 99
    pkt = tx.seal(b"payload", 4)
    assert int.from_bytes(pkt[4:8], "big") == 100
    rx.replay.top = (7 << 32) + 50
    assert rx.open(pkt)[2] == (7 << 32) + 100
    wrong = _pair("aes128", "sha1", esn=True)[1]
    wrong.replay.top = (6 << 32) + 50  # infers the wrong high half: ICV fails
    wrong._hmac = rx._hmac  # same keys
    wrong._cipher = rx._cipher
    with pytest.raises(EspError):
        wrong.open(pkt)


@pytest.mark.parametrize("esn", [False, True])
def test_sequence_number_never_wraps(esn: bool) -> None:
    tx, _ = _pair("aes128gcm", "none", esn=esn)
    tx.seq = tx.seq_max - 1
    tx.seal(b"last", 4)
    with pytest.raises(EspError) as exc:
        tx.seal(b"one too many", 4)
    assert exc.value.reason is DropReason.SEQUENCE_EXHAUSTED
    assert tx.seq == tx.seq_max


def test_parse_returns_scapy_style_fields() -> None:
    tx, rx = _pair("aes128", "sha256")
    pkt = tx.seal(b"hello", 17)
    p = rx.parse(pkt)
    assert (p.spi, p.seq, p.data, p.nh, p.padlen) == (0x1234, 1, b"hello", 17, 9)
    assert p.padding == bytes(range(1, 10)) and len(p.iv) == 16 and p.icv == pkt[-16:]


def test_inconsistent_suites_are_refused() -> None:
    with pytest.raises(SaConfigError):
        _ctx("aes128gcm", os.urandom(20), 0x1234, False, "sha256", os.urandom(32))
    with pytest.raises(SaConfigError):
        _ctx("null", b"", 0x1234, False)
