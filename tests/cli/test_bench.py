"""``ipsecconf bench``: the sub-command registers, runs, and prints text or JSON; the
measuring functions return sane figures (tiny sizes here: the real run is manual)."""

from __future__ import annotations

import argparse
import json

import pytest

from ipsecconf.cli import bench


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ipsecconf")
    bench.register(p.add_subparsers(dest="command"))
    return p


def test_register_adds_bench_with_its_options() -> None:
    args = _parser().parse_args(["bench", "spd", "--json", "--seconds", "0.5"])
    assert (args.what, args.json, args.seconds, args.func) == ("spd", True, 0.5, bench.run)
    assert _parser().parse_args(["bench"]).what == "all"
    assert _parser().parse_args(["bench", "ike"]).what == "ike"
    with pytest.raises(SystemExit):
        _parser().parse_args(["bench", "ikev1"])


def test_bench_esp_figures() -> None:
    rep = bench.bench_esp(
        0.002, sizes=(64, 1400), suites=(("aes128gcm", "none"), ("aes128", "sha256"))
    )
    rows = rep["esp"]
    assert len(rows) == 4
    for r in rows:
        assert r["encap_pps"] > 0 and r["decap_pps"] > 0 and r["burst_pps"] > 0
        assert r["encap_gbps"] == pytest.approx(r["encap_pps"] * r["size"] * 8 / 1e9, rel=0.01)
    gcm = [r for r in rows if r["suite"] == "aes128gcm"]
    assert all(0 < r["encap_vs_bare"] < 5 for r in gcm)


def test_bench_spd_figures() -> None:
    rep = bench.bench_spd(flows_n=400, small_n=10, big_n=300)
    assert rep["flows"] == 400
    assert rep["policies_small"]["ns_per_lookup"] > 0 and rep["ratio"] > 0
    assert rep["policies_big"]["hits"] > 0


def test_run_prints_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    opts = ["--seconds", "0.002", "--size", "64", "--suite", "aes128gcm"]
    args = _parser().parse_args(["bench", "esp", "--json", *opts])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["esp"][0]["suite"] == "aes128gcm" and doc["esp"][0]["size"] == 64
    args = _parser().parse_args(["bench", "esp", *opts, "--suite", "aes128/sha256"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "bare AESGCM.encrypt at 64 B" in text and "aes128/sha256" in text


def test_module_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["esp", "--seconds", "0.001", "--size", "64", "--suite", "null/sha1"]) == 0
    assert "null/sha1" in capsys.readouterr().out


def test_bench_ike_figures(capsys: pytest.CaptureFixture[str]) -> None:
    rows = bench.bench_ike(0.01)
    assert [r["suite"] for r in rows] == ["x25519+psk", "ecp256+rsa2048", "modp2048+psk"]
    for r in rows:
        assert r["handshakes_per_s"] > 0 and r["crypto_bound_per_s"] > 0
        # Figures only: timing targets live in the benchmark's output, never in tests.
        assert r["ratio"] == pytest.approx(
            r["handshakes_per_s"] / r["crypto_bound_per_s"], rel=0.01
        )


def test_bench_esp_in_udp(capsys: pytest.CaptureFixture[str]) -> None:
    opts = ["--seconds", "0.002", "--size", "1400", "--suite", "aes128gcm", "--udp"]
    args = _parser().parse_args(["bench", "esp", *opts, "--suite", "aes128/sha256"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "ESP in UDP 4500" in text and "aes128/sha256" in text
