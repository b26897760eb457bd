"""The classic ``ipsec`` command of the seed man page (filled in by its own issue)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """\
usage:
  ipsec policy add [-s src_ip/prefixlen[port]] [-t dst_ip/prefixlen[port]] -p {esp|ah|none}
        [-e {des|3des|null}] [-a {sha1|md5|null}] -d {in|out} [-f ip_protocol]
        [-l {restrict|permit}] [-m]
  ipsec policy delete all | -i index [[-s src_ip|-t dst_ip] -d {in|out} [-m]]
  ipsec policy show [-s src_ip] [-t dst_ip] [-f ip_protocol] [-d {in|out}] [-p {esp|ah}]
  ipsec cert set [-c <file_name> -k <file_name>]
  ipsec cert set [-r <file_name1> <file_name2> ..]
  ipsec cert show
  ipsec sa show [spi [-s src_ip -t dst_ip -p {esp|ah}]] [-v]
  ipsec stats [-z]
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Print the usage; the commands arrive with the state store."""
    sys.stderr.write(USAGE)
    sys.stderr.write("ipsec: the classic commands are not available in this build yet\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
