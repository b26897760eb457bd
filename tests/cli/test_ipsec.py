"""The classic ``ipsec`` command: command lines against the store and the printed output."""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path

import pytest

from ipsecconf.cli.ipsec_main import main as ipsec
from ipsecconf.cli.main import main as ipsecconf
from ipsecconf.state.store import Store
from tests.certgen import issue


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state.db"
    monkeypatch.setenv("IPSECCONF_STATE", str(path))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = ipsec(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# The man page's CIFS policy, and an unmirrored AH one, as typed at the prompt.
CIFS_ADD = shlex.split(
    "policy add -s 198.51.100.0/24 -t 203.0.113.10/32[139] -p esp -e 3des -a sha1 -d in"
)
AH_ADD = shlex.split("policy add -t 203.0.113.20 -p ah -a md5 -d out -m -f 17")


def policies(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    code, out, _ = run(capsys, "policy", "show", "--json")
    assert code == 0
    return json.loads(out)


def selectors(row: dict) -> list[tuple[str, str, str, str, int]]:
    return [
        (s["source"], s["source_ports"], s["destination"], s["destination_ports"], s["protocol"])
        for s in row["selectors"]
    ]


# (command line, expected rows as (direction, action, protocol, encryption, authentication,
#  level, selectors of the first row))
ADD_CASES = [
    (
        [
            "-s",
            "198.51.100.0/24",
            "-t",
            "203.0.113.10/32[139]",
            "-p",
            "esp",
            "-e",
            "3des",
            "-a",
            "sha1",
            "-d",
            "in",
        ],
        [
            ("in", "protect", "esp", "3des", "sha1", "restrict"),
            ("out", "protect", "esp", "3des", "sha1", "restrict"),
        ],
        [
            ("198.51.100.0/24", "any", "203.0.113.10/32", "139", 6),
            ("198.51.100.0/24", "any", "203.0.113.10/32", "139", 17),
        ],
    ),
    (
        ["-s[139]", "-p", "esp", "-e", "des", "-a", "md5", "-d", "in", "-l", "permit"],
        [
            ("in", "protect", "esp", "des", "md5", "permit"),
            ("out", "protect", "esp", "des", "md5", "permit"),
        ],
        [("any", "139", "any", "any", 6), ("any", "139", "any", "any", 17)],
    ),
    (
        ["-t", "203.0.113.5", "-p", "esp", "-d", "out", "-m"],
        [("out", "protect", "esp", "auto", "auto", "restrict")],
        [("any", "any", "203.0.113.5/32", "any", 0)],
    ),
    (
        ["-t", "203.0.113.5", "-p", "esp", "-e", "null", "-a", "null", "-d", "out", "-m"],
        [("out", "protect", "esp", "null", "auto", "restrict")],
        [("any", "any", "203.0.113.5/32", "any", 0)],
    ),
    (
        ["-t", "203.0.113.6[22]", "-f", "6", "-p", "ah", "-a", "sha1", "-d", "out"],
        [
            ("out", "protect", "ah", "auto", "sha1", "restrict"),
            ("in", "protect", "ah", "auto", "sha1", "restrict"),
        ],
        [("any", "any", "203.0.113.6/32", "22", 6)],
    ),
    (
        ["-s", "2001:db8::/32", "-p", "none", "-d", "out", "-m"],
        [("out", "bypass", None, "auto", "auto", "restrict")],
        [("2001:db8::/32", "any", "any", "any", 0)],
    ),
    (
        ["-t", "203.0.113.0/24", "-p", "discard", "-d", "out", "-m", "-f", "udp"],
        [("out", "discard", None, "auto", "auto", "restrict")],
        [("any", "any", "203.0.113.0/24", "any", 17)],
    ),
    (
        ["-t", "203.0.113.7", "-p", "esp", "-e", "aes256gcm", "-a", "none", "-d", "out", "-m"],
        [("out", "protect", "esp", "aes256gcm", "none", "restrict")],
        [("any", "any", "203.0.113.7/32", "any", 0)],
    ),
]


@pytest.mark.parametrize(("argv", "rows", "first_selectors"), ADD_CASES)
def test_policy_add(
    state: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    rows: list[tuple],
    first_selectors: list[tuple],
) -> None:
    code, out, err = run(capsys, "policy", "add", *argv)
    assert code == 0, err
    assert out.count("added") == len(rows)
    stored = policies(capsys)
    by_dir = {r["direction"]: r for r in stored}
    got = [
        (
            r["direction"],
            r["action"],
            r["protocol"],
            r["encryption"],
            r["authentication"],
            r["level"],
        )
        for r in sorted(stored, key=lambda r: r["index"])
    ]
    assert got == rows
    assert selectors(by_dir[rows[0][0]]) == first_selectors
    assert all(not r["managed"] for r in stored)
    if len(rows) == 2:  # the mirror: addresses and ports swapped
        mirror = by_dir[rows[1][0]]
        assert selectors(mirror) == [(d, dp, s, sp, p) for s, sp, d, dp, p in first_selectors]


INVALID = [
    (
        ["policy", "add", "-p", "esp", "-d", "in", "-s[139]", "-e", "des", "-a", "ah"],
        "'ah' is a protocol",
    ),
    (["policy", "add", "-p", "esp"], "-d"),
    (["policy", "add", "-d", "in"], "-p"),
    (["policy", "add", "-p", "esp", "-d", "sideways"], "invalid choice"),
    (["policy", "add", "-p", "gre", "-d", "in"], "invalid choice"),
    (["policy", "add", "-p", "esp", "-d", "in", "-e", "blowfish"], "not an encryption"),
    (["policy", "add", "-p", "esp", "-d", "in", "-a", "sha3"], "not an authentication"),
    (["policy", "add", "-p", "ah", "-d", "in", "-e", "des"], "AH authenticates only"),
    (["policy", "add", "-p", "esp", "-d", "in", "-s", "10.0.0.0/33"], "-s 10.0.0.0/33"),
    (["policy", "add", "-p", "esp", "-d", "in", "-t", "10.0.0.1[99999]"], "outside 0-65535"),
    (
        ["policy", "add", "-p", "esp", "-d", "in", "-t", "10.0.0.1[22]", "-f", "1"],
        "a port needs TCP",
    ),
    (["policy", "add", "-p", "esp", "-d", "in", "-f", "999"], "outside 0-255"),
    (["policy", "add", "-p", "esp", "-d", "in", "-l", "lax"], "invalid choice"),
    (["policy", "add", "-p", "none", "-d", "in", "-e", "des"], "make no sense"),
    (["policy", "add", "-p", "esp", "-d", "in", "-e", "aes128gcm", "-a", "sha1"], "AEAD"),
    (["policy", "add", "-p", "esp", "-d", "in", "-e", "null", "-a", "none"], "protects nothing"),
    (
        ["policy", "add", "-p", "esp", "-d", "in", "-s", "10.0.0.0/8", "-t", "2001:db8::1"],
        "IPv4 but destination is IPv6",
    ),
    (["policy", "delete"], "exactly one of"),
    (["policy", "delete", "all", "-i", "1"], "exactly one of"),
    (["policy", "delete", "-i", "42"], "no policy with that index"),
    (["policy", "delete", "-s", "10.0.0.0/8"], "needs -d"),
    (["policy", "delete", "everything"], "unexpected argument"),
    (["policy", "show", "-f", "bogus"], "unknown protocol"),
    (["cert", "set"], "give either -c and -k, or -r"),
    (["cert", "set", "-c", "a.pem"], "-c and -k go together"),
    (["cert", "set", "-r", *[f"r{i}.pem" for i in range(16)]], "at most 15"),
    (["cert", "set", "-r", "missing.pem"], "No such file"),
    # Refused by the shared X.509 checks (IpsecconfError subclasses), not by the parser:
    # they get the usage line all the same.
    (["cert", "set", "-c", "notpem.txt", "-k", "node.key"], "no valid X.509 certificate"),
    (["cert", "set", "-c", "node.pem", "-k", "notpem.txt"], "private key:"),
    (["cert", "set", "-c", "node.pem", "-k", "other.key"], "does not belong"),
    (["cert", "set", "-r", "sixteen.pem"], "hold 16 root certificates"),
    (["sa", "show", "-s", "10.0.0.1"], "give the spi first"),
    (["sa", "show", "zz"], "not an SPI"),
    # The man page: for sa commands source and destination are addresses, never ranges.
    (["sa", "show", "5000", "-s", "10.0.0.0/24"], "plain IP address, not a prefix"),
    (["sa", "show", "5000", "-t", "10.0.0.1/32"], "plain IP address, not a prefix"),
    (["sa", "show", "5000", "-t", "10.0.0.1[500]"], "not a prefix or port"),
    (["sa", "show", "5000", "-s", "filer.example"], "not an IP address"),
    (["stats", "-x"], "unrecognized arguments"),
    (["policy", "add", "-p", "esp", "-d", "in", "junk"], "unrecognized arguments: junk"),
    (["frobnicate"], "invalid choice"),
]


@functools.cache
def input_files() -> dict[str, bytes]:
    """The files the invalid ``cert set`` lines name (made once: key generation is slow)."""
    root = issue("Root CA", ca=True)
    node = issue("filer", issuer=root)
    other = issue("other", issuer=root)
    return {
        "notpem.txt": b"this is not PEM\n",
        "node.pem": node.cert_pem(),
        "node.key": node.key_pem(),
        "other.key": other.key_pem(),
        "sixteen.pem": b"".join(issue(f"root {i}", ca=True).cert_pem() for i in range(16)),
    }


def usage_of(argv: list[str]) -> str:
    """The usage line a refused command line must print: its subcommand's."""
    words = argv[:1] if argv[0] == "stats" else argv[:2]
    if words[0] not in ("policy", "cert", "sa", "stats"):
        return "usage: ipsec "
    return f"usage: ipsec {' '.join(words)}"


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], reason: str) -> None:
    """Run a command line that must be refused: exit 1, its usage line, one reason line."""
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert out == ""
    assert err.startswith(usage_of(argv)), err
    assert len(err.splitlines()) == 2, err  # the usage line and a one-line reason
    assert reason in err, err
    assert "Traceback" not in err


def trace(capsys: pytest.CaptureFixture[str], state: Path) -> tuple[object, ...]:
    """Everything a command could change: the policies, the file's bytes and mtime, and
    the files next to it (no -wal/-shm/lock left behind)."""
    stat = state.stat()
    return (
        policies(capsys),
        state.read_bytes(),
        stat.st_mtime_ns,
        sorted(p.name for p in state.parent.iterdir()),
    )


INVALID_IDS = [" ".join(a)[:40] for a, _ in INVALID]


@pytest.fixture
def inputs_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the files the invalid lines name; the store elsewhere."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name, data in input_files().items():
        (cwd / name).write_bytes(data)
    monkeypatch.chdir(cwd)
    return cwd


@pytest.mark.parametrize(("argv", "reason"), INVALID, ids=INVALID_IDS)
def test_invalid_command_lines_leave_the_store_alone(
    state: Path,
    inputs_in_cwd: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    reason: str,
) -> None:
    assert run(capsys, *CIFS_ADD)[0] == 0
    before = trace(capsys, state)
    assert len(before[0]) == 2  # type: ignore[arg-type]
    refused(capsys, argv, reason)
    assert trace(capsys, state) == before


@pytest.mark.parametrize(("argv", "reason"), INVALID, ids=INVALID_IDS)
def test_invalid_command_lines_create_no_store(
    tmp_path: Path,
    inputs_in_cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    reason: str,
) -> None:
    fresh = tmp_path / "fresh" / "state.db"
    monkeypatch.setenv("IPSECCONF_STATE", str(fresh))
    refused(capsys, argv, reason)
    assert not fresh.parent.exists()  # not even the directory


READ_OR_DELETE = [
    ["policy", "show"],
    ["policy", "show", "--json"],
    ["policy", "delete", "all"],
    ["sa", "show"],
    ["sa", "show", "5000", "-v"],
    ["cert", "show"],
    ["stats"],
    ["stats", "-z"],
]


@pytest.mark.parametrize("argv", READ_OR_DELETE, ids=[" ".join(a) for a in READ_OR_DELETE])
def test_reads_and_deletes_create_no_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    fresh = tmp_path / "fresh" / "state.db"
    monkeypatch.setenv("IPSECCONF_STATE", str(fresh))
    code, _out, err = run(capsys, *argv)
    assert code == 0, err
    assert not fresh.parent.exists()


def test_there_are_enough_invalid_lines() -> None:
    assert len(INVALID) >= 20


def test_delete_forms_and_mirror_rule(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for dst in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        assert run(capsys, "policy", "add", "-t", dst, "-p", "esp", "-d", "out")[0] == 0
    rows = policies(capsys)
    assert len(rows) == 6
    first = min(r["index"] for r in rows)
    # -i deletes the row and its mirror
    assert run(capsys, "policy", "delete", "-i", str(first))[0] == 0
    assert len(policies(capsys)) == 4
    # -i with -m leaves the mirror
    some = min(r["index"] for r in policies(capsys))
    assert run(capsys, "policy", "delete", "-i", str(some), "-m")[0] == 0
    assert len(policies(capsys)) == 3
    # by selector and direction
    code, out, _ = run(capsys, "policy", "delete", "-t", "203.0.113.3", "-d", "out")
    assert code == 0 and out.startswith("2 policies deleted")
    assert len(policies(capsys)) == 1
    assert run(capsys, "policy", "delete", "all")[0] == 0
    assert policies(capsys) == []


def rows_by_selector(capsys: pytest.CaptureFixture[str]) -> set[tuple[str, str, str]]:
    """(direction, source, destination) of every stored row."""
    return {
        (r["direction"], r["selectors"][0]["source"], r["selectors"][0]["destination"])
        for r in policies(capsys)
    }


def test_delete_by_source_and_direction(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for src in ("198.51.100.0/24", "198.51.100.128/25"):
        assert run(capsys, "policy", "add", "-s", src, "-p", "esp", "-d", "in")[0] == 0
    assert rows_by_selector(capsys) == {
        ("in", "198.51.100.0/24", "any"),
        ("out", "any", "198.51.100.0/24"),
        ("in", "198.51.100.128/25", "any"),
        ("out", "any", "198.51.100.128/25"),
    }
    # -s with -d: the row whose source is that range, and its mirror with it
    code, out, err = run(capsys, "policy", "delete", "-s", "198.51.100.0/24", "-d", "in")
    assert code == 0, err
    assert out == "2 policies deleted\n"
    assert rows_by_selector(capsys) == {
        ("in", "198.51.100.128/25", "any"),
        ("out", "any", "198.51.100.128/25"),
    }
    # the direction is part of the selector: no "out" row has that source
    code, _, err = run(capsys, "policy", "delete", "-s", "198.51.100.128/25", "-d", "out")
    assert code == 1 and "no policy matches" in err
    # -m with the selector form leaves the mirror in place
    code, out, _ = run(capsys, "policy", "delete", "-s", "198.51.100.128/25", "-d", "in", "-m")
    assert code == 0 and out == "1 policy deleted\n"
    assert rows_by_selector(capsys) == {("out", "any", "198.51.100.128/25")}
    # and the mirror left behind is deleted by its own selector
    code, out, _ = run(capsys, "policy", "delete", "-t", "198.51.100.128/25", "-d", "out", "-m")
    assert code == 0 and out == "1 policy deleted\n"
    assert policies(capsys) == []


def test_help_names_the_deliberate_additions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    additions = out[out.index("deliberate additions") :]
    for word in ("aes256gcm", "chacha20poly1305", "sha256", "none", "discard", "-m", "--json"):
        assert word in additions, word
    assert "--state PATH" in additions and "IPSECCONF_STATE" in additions


def test_global_state_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The environment names another store: --state must win over it.
    decoy = tmp_path / "decoy" / "state.db"
    monkeypatch.setenv("IPSECCONF_STATE", str(decoy))
    chosen = tmp_path / "chosen.db"
    code, _, err = run(capsys, "--state", str(chosen), *CIFS_ADD)
    assert code == 0, err
    assert chosen.exists() and not decoy.parent.exists()
    code, out, _ = run(capsys, "--state", str(chosen), "policy", "show", "--json")
    assert code == 0 and len(json.loads(out)) == 2
    # also accepted after the command, as for ipsecconf
    code, out, _ = run(capsys, "policy", "show", "--json", "--state", str(chosen))
    assert code == 0 and len(json.loads(out)) == 2
    # without it, the environment's store (still empty, and still not created)
    code, out, _ = run(capsys, "policy", "show", "--json")
    assert code == 0 and json.loads(out) == [] and not decoy.parent.exists()


def test_index_numbers_are_stable(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "policy", "add", "-t", "203.0.113.1", "-p", "esp", "-d", "out", "-m")
    run(capsys, "policy", "add", "-t", "203.0.113.2", "-p", "esp", "-d", "out", "-m")
    (a, b) = sorted(r["index"] for r in policies(capsys))
    run(capsys, "policy", "delete", "-i", str(a))
    run(capsys, "policy", "add", "-t", "203.0.113.3", "-p", "esp", "-d", "out", "-m")
    indexes = sorted(r["index"] for r in policies(capsys))
    assert b in indexes and a not in indexes


def test_policy_show_layout_and_filters(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, *CIFS_ADD)
    run(capsys, *AH_ADD)
    _code, out, _ = run(capsys, "policy", "show")
    lines = out.splitlines()
    assert lines[0].split() == [
        "Index",
        "IPAddress/prefix/port/protocol",
        "Dir/Policy",
        "Proto/SecLevel",
        "ealg/aalg",
    ]
    assert "198.51.100.0/24/[any  ]/any -> 203.0.113.10/32/[139  ]/any" in out
    assert any("in /IPSEC" in ln and "esp/restrict" in ln and "3des/sha1" in ln for ln in lines)
    assert len(lines) == 2 + 3
    assert len(run(capsys, "policy", "show", "-d", "in")[1].splitlines()) == 3
    assert len(run(capsys, "policy", "show", "-p", "ah")[1].splitlines()) == 3
    assert len(run(capsys, "policy", "show", "-f", "17")[1].splitlines()) == 5
    assert len(run(capsys, "policy", "show", "-t", "203.0.113.20")[1].splitlines()) == 3
    assert len(run(capsys, "policy", "show", "-s", "198.51.100.0/24")[1].splitlines()) == 3


def test_cert_set_and_show(state: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = issue("Root CA", ca=True)
    node = issue("filer", issuer=root, ips=("203.0.113.10",))
    other = issue("other", issuer=root)
    (tmp_path / "root.pem").write_bytes(root.cert_pem())
    (tmp_path / "node.pem").write_bytes(node.cert_pem())
    (tmp_path / "node.key").write_bytes(node.key_pem())
    (tmp_path / "other.key").write_bytes(other.key_pem())
    code, _, err = run(
        capsys, "cert", "set", "-c", str(tmp_path / "node.pem"), "-k", str(tmp_path / "other.key")
    )
    assert code == 1 and "does not belong" in err
    assert err.startswith("usage: ipsec cert set")
    assert (
        run(
            capsys,
            "cert",
            "set",
            "-c",
            str(tmp_path / "node.pem"),
            "-k",
            str(tmp_path / "node.key"),
        )[0]
        == 0
    )
    assert run(capsys, "cert", "set", "-r", str(tmp_path / "root.pem"))[0] == 0
    code, out, _ = run(capsys, "cert", "show")
    assert "node (this node's own certificate)" in out
    assert "Subject:     CN=filer" in out and "Issuer:      CN=Root CA" in out
    assert "Fingerprint:" in out
    valid = (
        f"  Valid:       {node.cert.not_valid_before_utc.isoformat()} .. "
        f"{node.cert.not_valid_after_utc.isoformat()}"
    )
    assert valid in out.splitlines(), out
    key_text = node.key_pem().decode()
    assert key_text.splitlines()[1] not in out
    data = json.loads(run(capsys, "cert", "show", "--json")[1])
    assert {c["role"] for c in data} == {"node", "root"}


# What the engine records for an installed SA (engine/records.py), plus key-like entries
# that must never reach the screen even if a writer put them there.
ENGINE_DETAILS = {
    "direction": "out",
    "mode": "tunnel",
    "reqid": 7,
    "replay_window": 64,
    "esn": False,
    "udp_encapsulation": False,
    "lifetime": {"soft_seconds": 3240.0, "hard_seconds": 3600.0, "hard_bytes": 0},
}
PLANTED_KEY = "c0ffee00" * 8


def add_sas(state: Path) -> None:
    """One SA in each of the man page's states: M, d, L and D."""
    store = Store.open(str(state))  # creates it: ipsec's reads do not
    with store.transaction() as w:
        mature = w.add_sa(
            spi=0x1388,
            protocol="esp",
            source="203.0.113.1",
            destination="203.0.113.2",
            state="M",
            encryption="aes128gcm",
            authentication="none",
            data={
                **ENGINE_DETAILS,
                "enc_key": PLANTED_KEY,
                "lifetime": {**ENGINE_DETAILS["lifetime"], "integ_key": PLANTED_KEY},
            },
            now=1029864499.0,
        )
        w.add_sa_traffic(mature, 1400, 1)
        w.add_sa(
            spi=0x2000,
            protocol="ah",
            source="203.0.113.2",
            destination="203.0.113.1",
            state="d",
            encryption="null",
            authentication="sha256",
        )
        # A reserved SPI is Larval until IKE installs it (the engine's default state).
        w.add_sa(spi=0x3000, protocol="esp", source="203.0.113.3", destination="203.0.113.4")
        dead = w.add_sa(
            spi=0x4000, protocol="esp", source="203.0.113.5", destination="203.0.113.6", state="M"
        )
        w.set_sa_state([dead], "D")
    store.close()


def test_sa_show_states(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_sas(state)
    code, out, _ = run(capsys, "sa", "show")
    assert code == 0
    assert out.splitlines()[0].split() == [
        "Alg/State/Spi",
        "Current",
        "Bytes/CreatedTime",
        "SrcIPAddr->DstIPAddr",
    ]
    rows = {ln.split()[0]: ln for ln in out.splitlines()[2:]}
    assert set(rows) == {"esp/M/00001388", "ah/d/00002000", "esp/L/00003000", "esp/D/00004000"}
    assert "203.0.113.1->203.0.113.2" in rows["esp/M/00001388"]
    assert rows["esp/M/00001388"].split()[1].startswith("1400/")  # Current Bytes/CreatedTime
    assert "203.0.113.3->203.0.113.4" in rows["esp/L/00003000"]
    assert "203.0.113.5->203.0.113.6" in rows["esp/D/00004000"]
    states = {sa["spi"]: sa["state"] for sa in json.loads(run(capsys, "sa", "show", "--json")[1])}
    assert states == {0x1388: "M", 0x2000: "d", 0x3000: "L", 0x4000: "D"}


def test_sa_show_verbose(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_sas(state)
    code, out, _ = run(capsys, "sa", "show", "0x1388", "-v")
    assert code == 0
    lines = [ln.strip() for ln in out.splitlines()]
    assert "ah/d" not in out
    assert "encryption aes128gcm, authentication none" in lines
    assert "packets 1, bytes 1400" in lines  # the counters
    assert "lifetime: soft 3240 s, hard 3600 s, hard bytes unlimited" in lines
    assert "replay_window: 64" in lines and "mode: tunnel" in lines
    code, data, _ = run(capsys, "sa", "show", "0x1388", "-v", "--json")
    for text in (out, data):
        assert PLANTED_KEY not in text and "_key" not in text
    assert json.loads(data)[0]["details"]["lifetime"]["hard_seconds"] == 3600.0


def test_sa_show_filters(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_sas(state)
    code, out, _ = run(
        capsys, "sa", "show", "5000", "-s", "203.0.113.1", "-t", "203.0.113.2", "-p", "esp"
    )
    assert code == 0 and "esp/M/00001388" in out
    assert "esp/M" not in run(capsys, "sa", "show", "5000", "-p", "ah")[1]
    assert "esp/M" not in run(capsys, "sa", "show", "5000", "-s", "203.0.113.9")[1]


def test_stats_and_zero(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store.open(str(state))
    with store.transaction() as w:
        w.add_counters({"packets_in": 7, "integrity_failures": 2, "ike_started": 1})
    store.close()
    code, out, _ = run(capsys, "stats", "-z")
    assert code == 0
    assert "packets in" in out and " 7" in out and "counters zeroed" in out
    data = json.loads(run(capsys, "stats", "--json")[1])
    assert set(data["counters"].values()) == {0}
    assert {
        "packets_in",
        "bytes_out",
        "esp_errors",
        "ah_errors",
        "integrity_failures",
        "replay_failures",
        "policy_drops",
        "ike_started",
        "ike_succeeded",
        "ike_failed",
    } <= set(data["counters"])


def test_round_trip_through_export(
    state: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, *CIFS_ADD)
    run(capsys, *AH_ADD, "-l", "permit")
    before = policies(capsys)
    exported = tmp_path / "export.yaml"
    assert ipsecconf(["export", "-o", str(exported)]) == 0
    capsys.readouterr()
    fresh = tmp_path / "fresh.db"
    monkeypatch.setenv("IPSECCONF_STATE", str(fresh))
    assert ipsecconf(["apply", "--auto-approve", str(exported)]) == 0
    capsys.readouterr()
    after = policies(capsys)

    def strip(rows: list[dict]) -> list[tuple]:
        return sorted(
            (
                r["direction"],
                json.dumps(r["selectors"]),
                r["action"],
                r["protocol"],
                r["encryption"],
                r["authentication"],
                r["level"],
            )
            for r in rows
        )

    assert strip(after) == strip(before)
    assert ipsecconf(["plan", "--detailed-exitcode", str(exported)]) == 0
