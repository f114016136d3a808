"""Offline stand-in for the get-pip script that ansible-test downloads.

ansible-test creates one virtual environment per sanity test and bootstraps pip
in it by running a cached ``get_pip_<version>.py`` (normally downloaded from a
host this machine cannot reach). This file plays that role: run with the same
arguments as get-pip (a pip install command line plus get-pip's own
``--no-setuptools``/``--no-wheel``), it installs the interpreter's bundled pip
with ensurepip and then lets that pip install the requested version from the
package registry.

``--seed-ansible-test-cache`` copies this file to the cache path that the
installed ansible-test looks for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def seed_cache() -> None:
    from ansible_test._internal.python_requirements import get_venv_packages  # pylint: disable=import-outside-toplevel

    class _Python:  # get_venv_packages only reads .version
        version = "%d.%d" % sys.version_info[:2]

    version = get_venv_packages(_Python())["pip"]
    cache = os.path.expanduser("~/.ansible/test/cache")
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, "get_pip_%s.py" % version.replace(".", "_"))
    shutil.copyfile(os.path.abspath(__file__), target)
    print("ansible-test pip %s bootstrap: %s" % (version, target))


def bootstrap(args: list[str]) -> int:
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
    pip_args = [arg for arg in args if arg not in GET_PIP_ONLY]
    return subprocess.call([sys.executable, "-m", "pip", "install"] + pip_args)


if __name__ == "__main__":
    if sys.argv[1:] == ["--seed-ansible-test-cache"]:
        seed_cache()
    else:
        sys.exit(bootstrap(sys.argv[1:]))
