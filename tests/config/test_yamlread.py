"""The fast reader (rapidyaml) must give exactly what ruamel.yaml gives, positions included."""

from __future__ import annotations

import glob
import os
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipsecconf.config.sources import _template_vars
from ipsecconf.config.template import render
from ipsecconf.config.yamlread import YamlSyntaxError, read
from scripts.gen_policies import policy_block

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _same(text: str) -> None:
    fast = read(text)
    slow = read(text, fast=False)
    assert fast.reader == "ryml"
    assert fast.data == slow.data
    for path in _paths(slow.data)[1:]:
        assert fast.locate(path, True) == slow.locate(path, True), path
        value = _get(slow.data, path)
        # An empty value has no text: ruamel points past it, the fast reader at its key.
        if value is not None and not isinstance(value, dict | list):
            assert fast.locate(path, False) == slow.locate(path, False), path


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


def test_every_example_reads_the_same() -> None:
    files = glob.glob(os.path.join(ROOT, "examples", "**", "*.yaml"), recursive=True)
    files += glob.glob(os.path.join(ROOT, "examples", "**", "*.j2"), recursive=True)
    assert len(files) >= 5
    for name in files:
        with open(name) as fh:
            text = fh.read()
        if name.endswith(".j2"):
            text = render(text, _template_vars(text), name).text
        _same(text)


def test_generated_policies_read_the_same() -> None:
    _same("policies:\n" + "".join(policy_block(i) for i in range(300)))


def test_typed_scalars_match_ruamel() -> None:
    _same(
        "a: [1, 2, true, True, FALSE, null, Null, ~, 0x1F, 0o17, 0b11, 010, 1_000, 1.5, 1e3,"
        " .inf, -.inf, '3', \"4\", yes, no, on, 2002-12-14x, =, +5, -0]\n"
        "1: one\n'2': two\nempty:\nlit: |\n  text\n  more\nfold: >-\n  a\n  b\n"
    )


def test_references_fall_back_to_ruamel() -> None:
    parsed = read("base: &b {level: permit}\np:\n  <<: *b\n  name: x\n")
    assert parsed.reader == "ruamel"
    assert parsed.data["p"] == {"level": "permit", "name": "x"}


def test_duplicate_keys_found_by_both_readers() -> None:
    fast = read("a: 1\nb: 2\na: 3\n")
    assert fast.duplicates == [(("a",), (3, 1), (1, 1))]
    try:
        read("a: &x 1\na: 3\n")
    except YamlSyntaxError as exc:
        assert exc.line == 2
        assert "first defined at line 1" in exc.message
    else:
        raise AssertionError("ruamel path must refuse duplicate keys")


def test_syntax_error_comes_from_ruamel_with_position() -> None:
    try:
        read("a: [1, 2\nb: 3\n")
    except YamlSyntaxError as exc:
        assert (exc.line, exc.column) == (2, 2)
        assert "flow sequence" in exc.message
    else:
        raise AssertionError("syntax error expected")


_words = st.text(alphabet=string.ascii_letters + string.digits + "_-./:", min_size=1, max_size=12)
_scalars = st.one_of(
    st.integers(-(10**9), 10**9),
    st.booleans(),
    st.none(),
    _words,
    st.sampled_from(["0x1F", "010", "1_000", "1.5", "~", "null", "True", "yes", "'quoted'", '"q"']),
)
_keys = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)


def _emit(value: Any, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return " {}\n"
        return "\n" + "".join(f"{pad}{k}:{_emit(v, indent + 2)}" for k, v in value.items())
    if isinstance(value, list):
        if not value:
            return " []\n"
        return "\n" + "".join(f"{pad}-{_emit(v, indent + 2)}" for v in value)
    if value is None:
        return " null\n"
    if isinstance(value, bool):
        return f" {'true' if value else 'false'}\n"
    text = str(value)
    if text[:1] in "-:.?[]{}#&*!|>%@`,'\"" or ": " in text or text.endswith(":"):
        text = "'" + text.replace("'", "''") + "'"
    return f" {text}\n"


_docs = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _docs, min_size=1, max_size=5))
def test_generated_documents_read_the_same(doc: dict[str, Any]) -> None:
    text = "".join(f"{k}:{_emit(v, 2)}" for k, v in doc.items())
    try:
        slow = read(text, fast=False)
    except YamlSyntaxError:
        return  # the generator can make text that is not YAML; both must then agree
    fast = read(text)
    assert fast.data == slow.data, text
