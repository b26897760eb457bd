"""Reading one YAML text into plain Python data, with the position of every node on demand.

Two readers give the same data (a test proves it on every example and on generated
documents):

* the fast path, rapidyaml (``ryml``): parses 10,000 policies in well under a second.
  Scalars are typed by ruamel.yaml's own YAML 1.2 resolver, so ``true``, ``010`` or
  ``0x1F`` mean what ruamel says.  Positions are not computed up front: a node is found
  again in the tree only when a diagnostic needs its line and column.
* ruamel.yaml's round-trip loader, the reference: used for anything the fast path does
  not handle (anchors, aliases, merge keys, tags, several documents) and for every syntax
  error, since its messages say best what is wrong.

Duplicate keys are reported by both readers as errors with both positions.
"""

from __future__ import annotations

from ipsecconf.config.yaml_fast import Fallback, read_fast
from ipsecconf.config.yaml_ruamel import read_ruamel
from ipsecconf.config.yamldoc import Parsed, Path, Position, YamlSyntaxError, plain_scalar

__all__ = ["Parsed", "Path", "Position", "YamlSyntaxError", "plain_scalar", "read"]


def read(text: str, *, fast: bool = True) -> Parsed:
    """Parse one YAML document; raise :class:`YamlSyntaxError` when it does not parse."""
    if fast:
        try:
            parsed = read_fast(text)
        except Fallback:
            pass
        except Exception:  # noqa: BLE001 - any ryml failure: let ruamel explain it
            pass
        else:
            return parsed
    return read_ruamel(text)
