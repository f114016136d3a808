# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet of real sshd servers on loopback addresses.

Each host of the fleet is an sshd of its own (127.0.0.N, a free port, its own
host key and config, run as root with -D) reached with one client key and a
known_hosts file that holds every host key, so host key checking stays on.
Everything lives in one tmp dir: keys, configs, pid files, SSH control
sockets, each host's data tree and remote tmp. Teardown closes the SSH
control masters and kills every sshd the fixture started, whatever happened.

The inventory is the bundled one (inventory/local) as AWX would import it:
its groups and group variables, with the fleet's hosts in place of
localhost, spread over the groups, and host_vars that give each host its
own data tree (every path in the bundled inventory hangs off
`datasteward_demo_root`), its own thresholds and its schedule mode (host
or controller, by group).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.e2e.jobs import exported_inventory, inventory_groups

HOSTS = 20
# A mixed fleet, as sites run one: the storage nodes (station) keep their
# recurring jobs on the host, since they must go on copying while the
# controller is unreachable, and so do the hosts in no group (the disk
# status job); the scratch and upload servers leave theirs to AWX
# (datasteward_schedule_mode: controller). Both modes must converge and
# stay unchanged on the second run.
HOST_SCHEDULED_GROUPS = ("station", None)
FIRST_ADDRESS = 10  # 127.0.0.10 .. 127.0.0.29
SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"

SSHD_CONFIG = """\
ListenAddress {address}
Port {port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxSessions 50
MaxStartups 100:30:200
LogLevel ERROR
Subsystem sftp {sftp_server}
"""


def free_port(address):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text(encoding="ascii").split()[:2]


def wait_for_banner(address, port, deadline):
    while True:
        try:
            with socket.create_connection((address, port), timeout=2) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("sshd on %s:%d did not answer" % (address, port))
        time.sleep(0.05)


class Fleet:
    """The running fleet: hosts with their address, port and data tree."""

    def __init__(self, root):
        self.root = root
        self.hosts = []  # dicts: name, address, port, dir, process
        self.client_key = root / "client_ed25519"
        self.known_hosts = root / "known_hosts"
        self.control_dir = root / "cp"

    def start(self):
        self.control_dir.mkdir()
        # sshd's privilege separation directory is compiled in; the package's
        # init script creates it at boot, which a container may not have had.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        key_type, key = keygen(self.client_key)
        (self.root / "authorized_keys").write_text("%s %s fleet-client\n" % (key_type, key), encoding="ascii")
        known = []
        for index in range(HOSTS):
            host = self._start_host(index)
            known.append("[%s]:%d %s" % (host["address"], host["port"], host["host_key"]))
        self.known_hosts.write_text("\n".join(known) + "\n", encoding="ascii")
        deadline = time.monotonic() + 30
        for host in self.hosts:
            wait_for_banner(host["address"], host["port"], deadline)

    def _start_host(self, index):
        name = "fleet-%02d" % (index + 1)
        address = "127.0.0.%d" % (FIRST_ADDRESS + index)
        host_dir = self.root / name
        host_dir.mkdir()
        host_key = keygen(host_dir / "ssh_host_ed25519_key")
        port = free_port(address)
        config = host_dir / "sshd_config"
        config.write_text(
            SSHD_CONFIG.format(
                address=address,
                port=port,
                host_key=host_dir / "ssh_host_ed25519_key",
                pid_file=host_dir / "sshd.pid",
                authorized_keys=self.root / "authorized_keys",
                sftp_server=SFTP_SERVER,
            ),
            encoding="ascii",
        )
        with open(host_dir / "sshd.log", "wb") as log:
            process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        host = {"name": name, "index": index, "address": address, "port": port, "dir": host_dir, "host_key": " ".join(host_key), "process": process}
        self.hosts.append(host)
        return host

    def ssh_args(self):
        return (
            "-o ControlMaster=auto -o ControlPersist=60s -o IdentitiesOnly=yes -o BatchMode=yes "
            "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s" % self.known_hosts
        )

    def stop(self):
        """Close every SSH control master Ansible left (ControlPersist), then
        stop each sshd with the session processes it forked (they run in
        sessions of their own, so a process group signal would miss them)."""
        for socket_path in self.control_dir.iterdir() if self.control_dir.is_dir() else ():
            subprocess.run(["ssh", "-o", "ControlPath=%s" % socket_path, "-O", "exit", "fleet"], capture_output=True, timeout=10, check=False)
        processes = []
        for host in self.hosts:
            try:
                listener = psutil.Process(host["process"].pid)
                processes.extend(listener.children(recursive=True) + [listener])
            except psutil.NoSuchProcess:
                pass
        for process in processes:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        dummy, alive = psutil.wait_procs(processes, timeout=10)
        for process in alive:
            process.kill()
        for host in self.hosts:
            host["process"].wait(timeout=10)


def seed_host(host):
    """This host's own data tree, laid out as the bundled inventory expects it
    under `datasteward_demo_root`: scratch users with fresh and old files, a
    nightly buffer, and three directories standing in for the station's disks.
    File names and sizes depend on the host, so no two trees are alike."""
    demo = host["dir"] / "demo"
    index = host["index"]
    files = {
        "scratch/alice/run1/frames.dat": 20000 + index,
        "scratch/user%02d/results.h5" % index: 4096 * (index + 1),
        "scratch/bob/old-results.tar": 50000,
        "buffer/2026-11-21/scan_0001.dat": 30000 + index,
        "buffer/2026-11-22/%s.dat" % host["name"]: 1000 * (index + 1),
    }
    for relative, size in files.items():
        path = demo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((relative.encode() * (size // len(relative) + 1))[:size])
    year_ago = time.time() - 365 * 86400
    os.utime(demo / "scratch/bob/old-results.tar", (year_ago, year_ago))
    for disk in ("P01", "P02", "B01"):
        (demo / "disks" / disk).mkdir(parents=True)


def host_vars(fleet, host):
    return {
        "ansible_host": host["address"],
        "ansible_port": host["port"],
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(fleet.client_key),
        # the Python the agent role's private venv gives a real host (psutil,
        # pySMART): here the checkout's venv, which has them
        "ansible_python_interpreter": sys.executable,
        "ansible_remote_tmp": str(host["dir"] / "remote-tmp"),
        # a real host's tree, made by the fixture: not the bundled demo's
        "datasteward_demo": False,
        "datasteward_demo_root": str(host["dir"] / "demo"),
        # the hosts differ: thresholds that move with the host
        "datasteward_disk_warn_percent": 70 + host["index"] % 10,
        "datasteward_disk_critical_percent": 90 + host["index"] % 5,
    }


def write_inventory(fleet):
    """The bundled inventory's groups and variables, with the fleet as hosts.
    Host i goes to slot i of [each group..., no group], round robin."""
    exported = exported_inventory()
    groups = inventory_groups(exported)
    inventory_dir = fleet.root / "inventory"
    (inventory_dir / "host_vars").mkdir(parents=True)
    children = {name: {"vars": exported[name].get("vars", {}), "hosts": {}} for name in groups}
    top = {"all": {"vars": exported["all"].get("vars", {}), "hosts": {}, "children": children}}
    membership = {}
    for host in fleet.hosts:
        slot = host["index"] % (len(groups) + 1)
        group = groups[slot] if slot < len(groups) else None
        membership[host["name"]] = group
        (children[group]["hosts"] if group else top["all"]["hosts"])[host["name"]] = None
        variables = host_vars(fleet, host)
        if group not in HOST_SCHEDULED_GROUPS:
            variables["datasteward_schedule_mode"] = "controller"
        (inventory_dir / "host_vars" / ("%s.yml" % host["name"])).write_text(yaml.safe_dump(variables, sort_keys=True), encoding="utf-8")
    (inventory_dir / "hosts.yml").write_text(yaml.safe_dump(top, sort_keys=False), encoding="utf-8")
    return inventory_dir / "hosts.yml", membership


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if os.geteuid() != 0 or not os.path.exists(SSHD):
        pytest.skip("the SSH fleet needs root and openssh-server (%s)" % SSHD)
    fleet = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        fleet.start()
        for host in fleet.hosts:
            seed_host(host)
        fleet.inventory, fleet.membership = write_inventory(fleet)
        yield fleet
    finally:
        fleet.stop()
        shutil.rmtree(fleet.control_dir, ignore_errors=True)
