"""SKEYSEED, SK_* and KEYMAT against published IKEv2 KDF vectors (RFC 7296 2.14, 2.17, 2.18).

Vector 1 is the first SHA-1 case of the NIST CAVP SP 800-135 IKEv2 KDF vectors
(https://csrc.nist.gov/CSRC/media/Projects/Cryptographic-Algorithm-Validation-Program/
documents/components/800-135testvectors/ikev2.zip), copied from a public Rust KDF test
suite that cites that file.  Vector 2 is the CAVS run recorded in libreswan's
``ikev2`` CAVS tool source comment (libreswan/libreswan, "Libreswan KDF CAVS Test",
``-h 2`` = SHA-1, DKM length 132).  Both use PRF HMAC-SHA1 and a 132-byte DKM, which is
exactly SK_d(20) SK_ai(20) SK_ar(20) SK_ei(16) SK_er(16) SK_pi(20) SK_pr(20) for
AES-128-CBC with HMAC-SHA1-96, so the split of :func:`ike_keys` is checked too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ipsecconf.crypto.prf import prf_plus
from ipsecconf.ike.keymat import child_keys, ike_keys, rekey_skeyseed, skeyseed
from ipsecconf.model.algorithms import CIPHERS, INTEGRITIES, PRFS

SHA1 = PRFS["prfsha1"]


@dataclass(frozen=True)
class Vector:
    name: str
    ni: str
    nr: str
    gir: str
    gir_new: str
    spi_i: str
    spi_r: str
    skeyseed: str
    dkm: str
    dkm_child: str
    dkm_child_dh: str
    skeyseed_rekey: str


VECTORS = [
    Vector(
        name="nist-cavp-sha1-0",
        ni="3651fef5c9c35e93",
        nr="c09a8b90a3f04d59",
        gir="d084a30166a50fb7325c3960874a839449ef9741c2f4f947d0201dd8c1269273d79509f37e3ca3eb"
        "4fa2fe2a28254e289cd3f34dad4eb4df1a07685a4b8a94fa61e2491f7598b3ce65547ff133b3f63d1ac"
        "4175eaa695033f3cedb026a6873a36455172a8540b8a5d23a0143bed0390ee49b168269d75fffee9fb6"
        "2be965993c",
        gir_new="52f00ab174c25d5b7139ae5ff4e8e9eddee5992d2e36adf8a559ffd90dab1442e4fbe429d320c0"
        "f33552a17d1557fa41ea70e8fb916c4fa27ed52b5f8ebd8461afa78f1159159a64055ac5f6319e29c28e"
        "ae58cbc6847770f32c3fed1d04750484f854790f95e9ec01bc5bc461f24966462e359511329305038e94"
        "deb6dd42c2",
        spi_i="8e5c3ae507221684",
        spi_r="b1f201bb155c3acd",
        skeyseed="cd2e8050137832245f1dbacc6e4f0a92f94d45d6",
        dkm="6f1b12cad3cbe097b35430356d869d54cddb0198ec859174d53ceb92dddedbe2436db69f60977c58"
        "fa63bbb667f8d36920b109baae8f6c61a9ac49feda01843225d080ec5539d5881a25521ffb2a0a91874a"
        "9c0a27fcc2d717eb8963a9e3a89c7ab264757284c28cf8c3ca40576f4220b052b1fb8e9ad60ba3c80557"
        "323331a8cbb89f20",
        dkm_child="4727dc0ef94eb326ce131cf282fb652faa638ad0ddae3786a11bcc0309876009f8c485de011a"
        "d962c5b1ca8a41ff8145445749079c5686e26ffebbc342f06981f3da745e11ca0976424d1f8caec623d5"
        "9dc7186deb20a27b411d1dcb70a365440bf7de905088b0692e8addc094e18d1939bdb67e89798ca6b239"
        "e2ccb81c2409dac0106c",
        dkm_child_dh="b109c21ad4c0797768c1cec9e63554681e48f224bca7f23c20c4ea7041983451e9aa1d54"
        "08656c8a975ff1b9d9a12c75ffeb64bdecb30174664cccb4e14f1c377b7f6d1525af77c7092aac3e47f9"
        "17ebae8297fb5539d2008ce830823a09cc197361d4a289c72745f6ce9fefe812be5bf55b3200fbb82e41"
        "a4a40877d3fe106db909707b",
        skeyseed_rekey="3b03bce748c96d5e8306918d2ff89b68f0648da3",
    ),
    Vector(
        name="libreswan-cavs-sha1",
        ni="32b50d5f4a3763f3",
        nr="9206a04b26564cb1",
        gir="4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52",
        gir_new="863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330",
        spi_i="34c9e7c188868785",
        spi_r="3ff77d760d2b2199",
        skeyseed="a9a7b222b59f8f48645f28a1db5b5f5d7479cba7",
        dkm="a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062"
        "768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979"
        "fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a"
        "81157435a7a56cc4",
        dkm_child="8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cda"
        "bd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf"
        "5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c"
        "0a22f3e664994d234cb4",
        dkm_child_dh="bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38"
        "c66232eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4"
        "a5080d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f933708450b7b3288f1fc863ab49fa901227c"
        "ffc06e27899c7054d56fd74c",
        skeyseed_rekey="63e81194946ebd05df7df5ebf5d8750056bf1f1d",
    ),
]


@pytest.fixture(params=VECTORS, ids=lambda v: v.name)
def vector(request: pytest.FixtureRequest) -> Vector:
    v: Vector = request.param
    return v


def _b(text: str) -> bytes:
    return bytes.fromhex(text)


def test_skeyseed(vector: Vector) -> None:
    assert skeyseed(SHA1, _b(vector.ni), _b(vector.nr), _b(vector.gir)) == _b(vector.skeyseed)


def test_sk_keys_are_the_dkm_in_rfc_order(vector: Vector) -> None:
    dkm = _b(vector.dkm)
    assert len(dkm) == 132
    seed = _b(vector.ni + vector.nr + vector.spi_i + vector.spi_r)
    assert prf_plus(SHA1, _b(vector.skeyseed), seed, 132) == dkm
    keys = ike_keys(
        SHA1,
        CIPHERS["aes128"],
        INTEGRITIES["sha1"],
        _b(vector.skeyseed),
        _b(vector.ni),
        _b(vector.nr),
        _b(vector.spi_i),
        _b(vector.spi_r),
    )
    parts = [keys.sk_d, keys.sk_ai, keys.sk_ar, keys.sk_ei, keys.sk_er, keys.sk_pi, keys.sk_pr]
    assert [len(p) for p in parts] == [20, 20, 20, 16, 16, 20, 20]
    assert b"".join(parts) == dkm
    assert "sk_d" in repr(keys) or "IkeKeys" in repr(keys)
    assert keys.sk_d.hex() not in repr(keys)


def test_child_keymat(vector: Vector) -> None:
    sk_d = _b(vector.dkm)[:20]
    keys = child_keys(
        SHA1, sk_d, CIPHERS["aes128"], INTEGRITIES["sha1"], _b(vector.ni), _b(vector.nr)
    )
    expected = _b(vector.dkm_child)
    # RFC 7296 2.17: encryption then integrity key, initiator-to-responder first.
    assert keys.encr_i + keys.integ_i + keys.encr_r + keys.integ_r == expected[:72]
    assert len(keys.encr_i) == 16 and len(keys.integ_r) == 20


def test_child_keymat_with_pfs(vector: Vector) -> None:
    sk_d = _b(vector.dkm)[:20]
    keys = child_keys(
        SHA1,
        sk_d,
        CIPHERS["aes128"],
        INTEGRITIES["sha1"],
        _b(vector.ni),
        _b(vector.nr),
        _b(vector.gir_new),
    )
    assert keys.encr_i + keys.integ_i + keys.encr_r + keys.integ_r == _b(vector.dkm_child_dh)[:72]


def test_rekey_skeyseed(vector: Vector) -> None:
    sk_d = _b(vector.dkm)[:20]
    seed = rekey_skeyseed(SHA1, sk_d, _b(vector.gir_new), _b(vector.ni), _b(vector.nr))
    assert seed == _b(vector.skeyseed_rekey)


def test_aead_ike_keys_have_no_integrity_keys_and_carry_the_salt() -> None:
    keys = ike_keys(
        PRFS["prfsha256"],
        CIPHERS["aes256gcm"],
        None,
        b"s" * 32,
        b"n" * 32,
        b"m" * 32,
        b"i" * 8,
        b"r" * 8,
    )
    assert keys.sk_ai == keys.sk_ar == b""
    assert len(keys.sk_ei) == len(keys.sk_er) == 36  # 32-byte key + 4-byte salt (RFC 5282)
    assert len(keys.sk_d) == len(keys.sk_pi) == 32


# No published IKEv2 KDF vector with PRF HMAC-SHA2-256 was found, so this one is a
# recorded exchange: strongSwan 5.9.8 (Debian) as responder, our core as initiator,
# proposal aes128-sha256-x25519 (PRF HMAC-SHA2-256), ESP aes128-sha256.  Every value
# below is from charon's own level-4 log of that exchange ("shared Diffie Hellman
# secret", "SKEYSEED", "Sk_* secret", the child "seed" Ni | Nr and the child keys) and
# the SPIs from ``swanctl --list-sas``; tests/ike/test_strongswan.py repeats the
# comparison live on every run.
STRONGSWAN_X25519_SHA256 = {
    "gir": "44969b319ee9eabb1831000e0a8412c395eec1b9b8e512a137229be4bd0c322e",
    "ni_nr": "582acf86496d63abd81e982bd4c04a50a1d5d1220ef3c556bd7eb267a7b58db2"
    "91854f57f9a363511a636f8606352fc0432ac0839694412df42ebef7dd7c542a",
    "spi_i": "4671eed3cffb126c",
    "spi_r": "ead073b118825d2c",
    "skeyseed": "9c1c523c5ac5a289c1724c656633c36fbb5038e6a8840ca8b144ae19ad7cc841",
    "sk_d": "3cbdcdb30ba24a3698fae253e678c749dbae7fac0432b8ac302a4223d9a560f3",
    "sk_ai": "def72bf2a93d4fea777078b283a3c8e1b735421a2691cb0d12516e56320251d9",
    "sk_ar": "97cfb806ba9649d7e5ea4dfe74d33da7889e6c01112fc450f5083356185dd716",
    "sk_ei": "79ff3e20b93f8f02f33194bcb5add546",
    "sk_er": "1a38ec37facc87c9b4042ce8f24d978b",
    "sk_pi": "c8fd004604085c9386fd56539f832a80b521d675c05cec322a2897c1f2c447d5",
    "sk_pr": "36dd916948c2a320aa3f5687eaa025bcb27e00624ce3fb33e903f6c7cd5d0140",
    "encr_i": "0280c087b2d5c02e008bc0d5f7a4bed1",
    "encr_r": "5d794c7c51b145d06a231027c57b96c5",
    "integ_i": "9d838538b22f2970696182479bc77d45d71f98f3b32558297392122652b67093",
    "integ_r": "c0d2c1f32eadb2c3d8f4d52211c41e31244f1e5437627bb0058747885d0b2a19",
}


def test_strongswan_recorded_exchange_sha256() -> None:
    v = {k: bytes.fromhex(x) for k, x in STRONGSWAN_X25519_SHA256.items()}
    prf = PRFS["prfsha256"]
    ni, nr = v["ni_nr"][:32], v["ni_nr"][32:]
    seed = skeyseed(prf, ni, nr, v["gir"])
    assert seed == v["skeyseed"]
    keys = ike_keys(
        prf, CIPHERS["aes128"], INTEGRITIES["sha256"], seed, ni, nr, v["spi_i"], v["spi_r"]
    )
    for name in ("sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr"):
        assert getattr(keys, name) == v[name], name
    child = child_keys(prf, keys.sk_d, CIPHERS["aes128"], INTEGRITIES["sha256"], ni, nr)
    assert (child.encr_i, child.encr_r) == (v["encr_i"], v["encr_r"])
    assert (child.integ_i, child.integ_r) == (v["integ_i"], v["integ_r"])
