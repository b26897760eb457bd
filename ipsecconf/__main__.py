"""``python -m ipsecconf`` runs the ``ipsecconf`` command."""

import sys

from ipsecconf.cli.main import main

sys.exit(main())
