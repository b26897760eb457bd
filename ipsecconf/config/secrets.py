"""Resolving secret references (``env:``, ``file:``, literals) and reading psk.txt files.

Only the CLI process holds the environment the references name, so resolution happens
here, in the config layer, and the values travel on as bytes.  Messages name the
reference, never the value.  The seed's psk.txt holds one ``address key`` per line;
``#`` starts a comment, blank lines are skipped.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ipsecconf.errors import SecretError
from ipsecconf.model.secrets import SecretRef
from ipsecconf.model.selectors import IPAddress


def resolve(ref: SecretRef, env: Mapping[str, str] | None = None) -> bytes:
    """The secret's bytes; :class:`SecretError` names what is missing, never a value."""
    environ = os.environ if env is None else env
    if ref.kind == "literal":
        return ref.target.encode("utf-8")
    if ref.kind == "env":
        value = environ.get(ref.target)
        if value is None:
            raise SecretError(f"environment variable {ref.target} is not set")
        if not value:
            raise SecretError(f"environment variable {ref.target} is empty")
        return value.encode("utf-8")
    path = ref.target
    if not os.path.isabs(path) and ref.base_dir:
        path = os.path.join(ref.base_dir, path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise SecretError(f"secret file {ref.target} does not exist") from None
    except PermissionError:
        raise SecretError(f"secret file {ref.target} is not readable") from None
    except IsADirectoryError:
        raise SecretError(f"secret file {ref.target} is a directory") from None
    # One trailing newline is how editors end files; it is not part of the key.
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise SecretError(f"secret file {ref.target} is empty")
    return data


def check_reference(ref: SecretRef) -> str | None:
    """Offline check (no secret is read): a problem with the reference's form, or None."""
    if ref.kind == "env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ref.target):
        return f"{ref.target!r} is not a valid environment variable name"
    if ref.kind == "file" and not ref.target.strip():
        return "file: reference has no path"
    return None


_HEX = re.compile(r"^(?:0x)?([0-9a-fA-F:\s]+)$")


def decode_key(material: bytes) -> bytes:
    """A manual SA key written as hex (``0x`` prefix, colons and spaces allowed)."""
    text = material.decode("ascii", "replace").strip()
    m = _HEX.match(text)
    if not m:
        raise SecretError("the key is not hex (write it as 0x... or hex digits)")
    digits = re.sub(r"[:\s]", "", m.group(1))
    if len(digits) % 2:
        raise SecretError("the hex key has an odd number of digits")
    return bytes.fromhex(digits)


@dataclass(frozen=True, slots=True)
class PskLine:
    """One entry of a psk.txt file."""

    address: IPAddress
    key: bytes
    line: int


class PskFileError(ValueError):
    """A malformed psk.txt line; ``line`` counts from 1."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def read_psk_file(path: str) -> list[PskLine]:
    """Parse a psk.txt file (the seed's na_psk.txt(5) format: ``address key``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise PskFileError("psk file does not exist", None) from None
    except (PermissionError, IsADirectoryError):
        raise PskFileError("psk file is not readable", None) from None
    except UnicodeDecodeError:
        raise PskFileError("psk file is not UTF-8 text", None) from None
    out: list[PskLine] = []
    seen: dict[IPAddress, int] = {}
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(None, 1)
        if len(parts) != 2 or not parts[1].strip():
            raise PskFileError("expected 'address key' (the key is missing)", number)
        try:
            address = ipaddress.ip_address(parts[0])
        except ValueError:
            raise PskFileError(f"{parts[0]!r} is not an IP address", number) from None
        if address in seen:
            raise PskFileError(
                f"address {address} appears again (first on line {seen[address]})", number
            )
        seen[address] = number
        out.append(PskLine(address, parts[1].strip().encode("utf-8"), number))
    return out
