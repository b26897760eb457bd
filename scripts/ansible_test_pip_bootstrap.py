"""Stand-in for the get-pip.py that ansible-test downloads to put pip into its venvs.

ansible-test (``--venv`` and every sanity test's own virtualenv) creates each venv
``--without-pip`` and then runs a cached ``~/.ansible/test/cache/get_pip_<version>.py``,
fetched from ansible's CI file server when absent.  Machines that reach only PyPI cannot
fetch it, so ``scripts/ansible-sanity.sh`` puts this file in the cache instead (only
when no real one is there).  It does what get-pip.py does with the same arguments:
bootstrap pip from the interpreter's bundled wheel (``ensurepip``, no network), then
``pip install`` the requested packages (e.g. ``pip==24.2``) from PyPI.  get-pip.py's own
``--no-setuptools``/``--no-wheel`` flags become an uninstall of what ensurepip brought.
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str]) -> int:
    own = {"--no-setuptools", "--no-wheel"}
    pip_args = [a for a in argv if a not in own]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", *pip_args], check=True)
    drop = [
        name
        for flag, name in (("--no-setuptools", "setuptools"), ("--no-wheel", "wheel"))
        if flag in argv
    ]
    if drop:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *drop], check=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
