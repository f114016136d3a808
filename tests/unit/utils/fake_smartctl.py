# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A ``smartctl`` that replays recorded output of real drives.

The recordings (``tests/unit/plugins/module_utils/fixtures/smartctl``, see
its SOURCE.md) hold one file per smartctl call: ``_`` followed by the call's arguments joined with
``_``, every ``/``, ``\\`` and ``:`` replaced by ``_``. This script rebuilds
that name from its own argv and prints the file, so the modules run against a
real drive's output without the drive. A recording stored gzip-compressed
(``<name>.gz``: the few whose CRLF line ends or non-UTF-8 bytes ansible-test's
text sanity tests refuse) is replayed decompressed, byte for byte.

Where the recordings stop, it answers the way smartctl does, in smartctl's own
words (taken from smartmontools' ataprint.cpp, atacmds.cpp, nvmeprint.cpp,
scsiprint.cpp and smartctl.cpp):

* ``-n standby``: a device listed in the folder's ``STANDBY`` file (one device
  per line) prints ``Device is in STANDBY mode, exit(2)`` and exits 2.
* ``-t short|long|conveyance``: starts a test (needs ``FAKE_SMARTCTL_STATE``) ("Testing has begun." for ATA,
  "Self-test has begun" for NVMe, "... Background Self Test has begun" for
  SCSI), remembers it in the state directory, and from then on the device's
  ``--all`` output shows the test in progress, as a real drive's does. A test
  already in progress (recorded or started here) gets "Can't start self-test
  without aborting current test" and exit status 4.
* ``--scan`` (without a recording of its own): the devices of the folder's
  ``--scan-open`` recording as smartctl lists them without opening them: a
  SATA or SCSI ``/dev/sdX`` as ``-d scsi`` (the open is what turns it into
  ``sat``), the others with their recorded type.
* ``-d test DEVICE`` (without a recording of its own): smartctl's detection
  lines for the type of the device's recorded ``--all`` call.
* A device listed in the folder's ``HANG`` file (one device per line) is a
  wedged drive: every call naming it, and ``--scan-open`` (which opens every
  drive) while the file lists any, prints smartctl's banner, forks a child (as
  smartctl may) and both sleep for ``HANG_SECONDS``; only killing the whole
  process group ends them. A line ``DEVICE OPTION...`` hangs only the calls on
  that device with one of the options (``/dev/sda -t``: it answers queries but
  hangs when a self-test is started).
* A device that no recording mentions: ``Smartctl open device: ... failed: No
  such device``, exit status 2 (smartctl's FAILDEV).
* A call on a known device that was never recorded: message on stderr, exit
  status 1.

Exit status: 0, unless the folder's ``exit_status.json`` maps the recording's
file name to another value (tests use it for smartctl's bitmask, e.g. 8 for
"DISK FAILING").

Configuration (environment): ``FAKE_SMARTCTL_DIR`` (the recording folder;
default: the folder ``fixture`` beside this script) and ``FAKE_SMARTCTL_STATE``
(a writable directory for started self-tests and the call log ``calls.log``;
the recordings themselves are never written to). Every call is appended to
``calls.log``, so tests can prove that check mode never ran ``-t``.

Test helpers (importable as
``ansible_collections.datasteward.storage.tests.unit.utils.fake_smartctl``):
``install()`` writes an executable ``smartctl`` wrapper pointed at one folder;
``fixtures_root()`` finds the recordings inside the collection; ``combine()``
puts several single-drive recordings into one folder with a ``--scan-open``
listing them; ``running_fakes()`` lists the live processes of one wrapper and
``kill_left()`` kills them.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sys
import time

GENERIC_HEADER = "smartctl 7.4 2023-08-01 r5530 [x86_64-linux] (local build)\nCopyright (C) 2002-23, Bruce Allen, Christian Franke, www.smartmontools.org\n\n"
TEST_TYPES = ("short", "long", "conveyance")
ATA_TEST_NAMES = {"short": "Short self-test", "long": "Extended self-test", "conveyance": "Conveyance self-test"}
NVME_TEST_NAMES = {"short": "Short", "long": "Extended"}

# How long a wedged drive's smartctl sleeps (a stray one ends by itself).
HANG_SECONDS = 600
PROTOCOLS = {"ata": "ATA", "sat": "ATA", "nvme": "NVMe"}

# smartctl's exit status bits (smartctl(8), RETURN VALUES)
FAILCMD = 1
FAILDEV = 2
FAILSMART = 4


def file_name(args):
    """The recording's file name for one smartctl call."""
    return re.sub(r"[/\\:]", "_", "_" + "_".join(args))


FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins", "module_utils", "fixtures", "smartctl")
GZIP_SUFFIX = ".gz"


def fixtures_root():
    """``tests/unit/plugins/module_utils/fixtures/smartctl`` of the collection this file is in."""
    return FIXTURES


def fixture_folders(kind, root=None):
    """Names of the recording folders of one kind (``singletests``, ``listingtests``); [] when absent."""
    folder = os.path.join(root or fixtures_root(), kind)
    if not os.path.isdir(folder):
        return []
    return sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name, "device.json")))


def dangling_links(folder):
    """Recordings in ``folder`` that are git symlink stand-ins pointing at files the fixtures lack."""
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith("_") and os.path.isfile(path):
            with open(path, "rb") as handle:
                target = link_target(handle.read())
            if target and not recording_exists(os.path.normpath(os.path.join(folder, target))):
                found.append("%s -> %s" % (name, target))
    return found


def install(bin_dir, fixture_dir, state_dir=None, python=None):
    """Write ``bin_dir/smartctl``, a wrapper running this script on ``fixture_dir``; return its path."""
    os.makedirs(str(bin_dir), exist_ok=True)
    path = os.path.join(str(bin_dir), "smartctl")
    lines = [
        "#!/bin/sh",
        "FAKE_SMARTCTL_DIR='%s'" % os.path.abspath(str(fixture_dir)),
        "FAKE_SMARTCTL_STATE='%s'" % os.path.abspath(str(state_dir or bin_dir)),
        "export FAKE_SMARTCTL_DIR FAKE_SMARTCTL_STATE",
        "exec '%s' '%s' \"$@\"" % (python or sys.executable, os.path.abspath(__file__)),
        "",
    ]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    os.chmod(path, 0o755)
    return path


def combine(dest, folders, hang=()):
    """Copy the recordings of several single-drive folders (distinct device names) into ``dest``
    and write a ``--scan-open`` recording listing their devices, and a ``HANG`` file with the
    lines ``hang``; return ``dest``."""
    dest = str(dest)
    os.makedirs(dest, exist_ok=True)
    scan = []
    for folder in folders:
        for name in sorted(os.listdir(str(folder))):
            if name.startswith("_"):
                shutil.copyfile(os.path.join(str(folder), name), os.path.join(dest, name))
        with open(os.path.join(str(folder), "device.json"), "r", encoding="utf-8") as handle:
            device = json.load(handle)["name"]
        kind = Replay(str(folder), None).recorded_type(device)
        scan.append("%s -d %s # %s, %s device" % (device, kind, device, PROTOCOLS.get(kind, "SCSI")))
    with open(os.path.join(dest, file_name(["--scan-open"])), "w", encoding="utf-8") as handle:
        handle.write("\n".join(scan) + "\n")
    if hang:
        with open(os.path.join(dest, "HANG"), "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in hang))
    return dest


def _proc_file(proc_root, pid, name):
    with open(os.path.join(proc_root, pid, name), "rb") as handle:
        return handle.read()


def running_fakes(smartctl, proc_root="/proc"):
    """Pids of live (not zombie) processes of the fake installed as ``smartctl``: their command line
    names this script, and their environment the wrapper's FAKE_SMARTCTL_STATE."""
    marker = ("FAKE_SMARTCTL_STATE=%s" % os.path.abspath(os.path.dirname(str(smartctl)))).encode()
    script = os.path.basename(__file__).encode()
    found = []
    for pid in os.listdir(proc_root):
        if not pid.isdigit():
            continue
        try:
            cmdline = _proc_file(proc_root, pid, "cmdline").split(b"\0")
            environ = _proc_file(proc_root, pid, "environ").split(b"\0")
            state = _proc_file(proc_root, pid, "stat").rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        if any(arg.endswith(script) for arg in cmdline) and marker in environ and state != b"Z":
            found.append(int(pid))
    return found


def kill_left(smartctl):
    """SIGKILL what is left of the fake installed as ``smartctl`` (test cleanup); return the pids that were left."""
    left = running_fakes(smartctl)
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass  # gone meanwhile
    return left


class Replay:
    """One recording folder plus the state of self-tests started on it."""

    def __init__(self, folder, state_dir):
        self.folder = folder
        self.state_dir = state_dir
        listed = os.listdir(folder) if os.path.isdir(folder) else []
        self.names = sorted(name[: -len(GZIP_SUFFIX)] if name.endswith(GZIP_SUFFIX) else name for name in listed)

    def read(self, name):
        """The recording, following git's text stand-ins for symlinks; None if a link dangles."""
        path = os.path.join(self.folder, name)
        for dummy in range(5):
            data = read_recording(path)
            target = dangling = link_target(data)
            if target is None:
                break
            # A checkout without symlink support stores a link as a one-line
            # file holding the relative target (the dataset has a few).
            path = os.path.normpath(os.path.join(os.path.dirname(path), target))
            if not recording_exists(path):
                return None
        # surrogateescape: replay the recorded bytes unchanged (some recordings
        # are not UTF-8).
        return data.decode("utf-8", "surrogateescape") if not dangling else None

    def has(self, name):
        return name in self.names and self.read(name) is not None

    def exit_status(self, name):
        path = os.path.join(self.folder, "exit_status.json")
        if not os.path.isfile(path):
            return 0
        with open(path, "r", encoding="utf-8") as handle:
            return int(json.load(handle).get(name, 0))

    def header(self, device):
        """The first three lines of a recording of this device (smartctl's banner)."""
        for name in self.names:
            if name.endswith(file_name([device])) and "--all" in name:
                lines = (self.read(name) or "").splitlines(True)
                if lines and lines[0].startswith("smartctl "):
                    return "".join(lines[:3])
        return GENERIC_HEADER

    def knows(self, device):
        suffix = file_name([device])
        return any(name.endswith(suffix) for name in self.names)

    def recorded_type(self, device):
        """The device type of the device's recorded ``--all`` call (``_-d_TYPE_--all_DEVICE``), else None."""
        prefix, middle, suffix = "_-d_", "_--all", file_name([device])
        for name in self.names:
            if name.startswith(prefix) and name.endswith(suffix) and middle in name:
                return name[len(prefix) : name.index(middle)]
        return None

    def _listed(self, name):
        path = os.path.join(self.folder, name)
        if not os.path.isfile(path):
            return []
        with open(path, "r", encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]

    def hangs(self, args, device):
        """Whether this call is on a wedged drive (listed in HANG), or is --scan-open while one is.

        A HANG line is a device, optionally followed by the options on which it hangs (``/dev/sda -t``).
        """
        for line in self._listed("HANG"):
            words = line.split()
            if (words[0] == device or (len(words) == 1 and "--scan-open" in args)) and (len(words) == 1 or set(words[1:]) & set(args)):
                return True
        return False

    def in_standby(self, device):
        return device in self._listed("STANDBY")

    # self-test state -----------------------------------------------------
    def _state_path(self, device):
        return os.path.join(self.state_dir or "", "selftest" + file_name([device]) + ".json")

    def started_test(self, device):
        path = self._state_path(device)
        if not self.state_dir or not os.path.isfile(path):
            return None
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)

    def start_test(self, device, test):
        with open(self._state_path(device), "w", encoding="utf-8") as handle:
            json.dump({"test": test, "started": time.time()}, handle)

    def log_call(self, argv):
        if not self.state_dir:
            return
        try:
            with open(os.path.join(self.state_dir, "calls.log"), "a", encoding="utf-8") as handle:
                handle.write(" ".join(argv) + "\n")
        except OSError:
            pass


def recording_exists(path):
    """Whether the recording ``path`` is there, plain or as ``path.gz``."""
    return os.path.isfile(path) or os.path.isfile(path + GZIP_SUFFIX)


def read_recording(path):
    """The bytes of the recording ``path``, plain or decompressed from ``path.gz``."""
    if not os.path.isfile(path) and os.path.isfile(path + GZIP_SUFFIX):
        with gzip.open(path + GZIP_SUFFIX, "rb") as handle:
            return handle.read()
    with open(path, "rb") as handle:
        return handle.read()


def link_target(data):
    """The target of a git symlink stand-in (a one-line ``../...`` file), else None."""
    text = data.decode("utf-8", "replace")
    if "\n" in text or not text.startswith("../"):
        return None
    return text


def kind_of(text):
    """ata, nvme or scsi, from a --all recording."""
    if "NVMe Log" in text or "Optional Admin Commands" in text or "Model Number:" in text:
        return "nvme"
    if "SMART overall-health" in text or "Self-test execution status:" in text or "ATA Version" in text:
        return "ata"
    return "scsi"


def recorded_progress(text):
    """The progress of a self-test the recording shows running, as smartctl words it, or None."""
    match = re.search(r"Self-test routine in progress\.\.\.\s*\n\s*(\d+)% of test remaining", text)
    if match:
        return "%s%% remaining" % match.group(1)
    match = re.search(r"Self-test status: \w+ self-test in progress \((\d+)% completed\)", text)
    if match:
        return "%s%% completed" % match.group(1)
    match = re.search(r"Self-test execution status:\s+(\d+)% of test remaining", text)
    if match:
        return "%s%% remaining" % match.group(1)
    return None


def show_running(text, test):
    """Rewrite a --all recording so it shows ``test`` just started (10 % done)."""
    kind = kind_of(text)
    lines = text.splitlines()
    out = []
    if kind == "ata":
        skipping = False
        for line in lines:
            if line.startswith("Self-test execution status:"):
                out.append("Self-test execution status:      ( 249)\tSelf-test routine in progress...")
                out.append("\t\t\t\t\t90% of test remaining.")
                skipping = True
                continue
            if skipping and line[:1] in ("\t", " ") and line.strip():
                continue
            skipping = False
            out.append(line)
    elif kind == "nvme":
        status = "Self-test status: %s self-test in progress (10%% completed)" % NVME_TEST_NAMES.get(test, "Short")
        if any(line.startswith("Self-test status:") for line in lines):
            out = [status if line.startswith("Self-test status:") else line for line in lines]
        else:
            out = lines + ["Self-test Log (NVMe Log 0x06)", status, "No Self-tests Logged", ""]
    else:
        done = False
        for line in lines:
            if not done and (line.startswith("SMART Self-test log") or line.startswith("No Self-tests have been logged")):
                out.append("Self-test execution status:\t\t90% of test remaining")
                done = True
            out.append(line)
        if not done:
            out += ["Self-test execution status:\t\t90% of test remaining", ""]
    return "\n".join(out) + "\n"


def polling_minutes(text, test):
    label = {"short": "Short", "long": "Extended", "conveyance": "Conveyance"}[test]
    match = re.search(label + r" self-test routine\s*\n\s*recommended polling time:\s*\(\s*(\d+)\)", text)
    return int(match.group(1)) if match else 2


CANNOT_START = "Can't start self-test without aborting current test (%s),\nadd '-t force' option to override, or run 'smartctl -X' to abort test.\n"


def ata_start(text, test, progress):
    """(lines, exit status) of ``-t`` on an ATA drive."""
    out = ["=== START OF OFFLINE IMMEDIATE AND SELF-TEST SECTION ===\n"]
    if progress:
        return out + [CANNOT_START % progress], FAILSMART
    if test == "conveyance" and "No Conveyance Self-test supported" in text:
        return out + ["Conveyance Self-test functions not supported\n\n"], FAILSMART
    cmdmsg = "Execute SMART %s routine immediately in off-line mode" % ATA_TEST_NAMES[test]
    minutes = polling_minutes(text, test)
    out.append('Sending command: "%s".\n' % cmdmsg)
    out.append('Drive command "%s" successful.\n' % cmdmsg)
    out.append("Testing has begun.\n")
    out.append("Please wait %d minutes for test to complete.\n" % minutes)
    out.append("Test will complete after %s\n" % time.strftime("%a %b %d %H:%M:%S %Y %Z", time.localtime(time.time() + 60 * minutes)))
    out.append("Use smartctl -X to abort test.\n")
    return out, 0


def nvme_start(text, test, progress):
    """(lines, exit status) of ``-t`` on an NVMe drive."""
    if test not in NVME_TEST_NAMES:
        sys.stderr.write("=======> INVALID ARGUMENT TO -t: %s\n" % test)
        return None, FAILCMD
    if progress:
        return [
            "Can't start self-test without aborting current test (%2d%% completed)\nUse smartctl -X to abort test\n" % int(re.match(r"\d+", progress).group(0))
        ], FAILSMART
    return ["Self-test has begun (NSID 0x1)\nUse smartctl -X to abort test\n"], 0


def scsi_start(text, test, progress):
    """(lines, exit status) of ``-t`` on a SCSI drive."""
    if progress:
        return [CANNOT_START % progress], FAILSMART
    if test == "short":
        return ["Short Background Self Test has begun\nUse smartctl -X to abort test\n"], 0
    if test == "long":
        return ["Extended Background Self Test has begun\nUse smartctl -X to abort test\n"], 0
    sys.stderr.write("=======> INVALID ARGUMENT TO -t: %s\n" % test)
    return None, FAILCMD


STARTS = {"ata": ata_start, "nvme": nvme_start, "scsi": scsi_start}


def start_selftest(replay, args, device, test):
    """Answer ``smartctl [-d TYPE] -t TEST DEVICE`` like smartctl."""
    header = replay.header(device)
    if not replay.state_dir:
        sys.stderr.write("fake smartctl: set FAKE_SMARTCTL_STATE to a writable directory to start self-tests\n")
        return header, FAILCMD
    all_args = [a for a in args if a not in ("-t", test)]
    all_args.insert(len(all_args) - 1, "--all")
    name = file_name(all_args)
    if not replay.has(name):
        return fail_unknown(replay, args, device)
    text = replay.read(name)
    kind = kind_of(text)
    if replay.started_test(device):
        progress = "10% completed" if kind == "nvme" else "90% remaining"
    else:
        progress = recorded_progress(text)
    lines, status = STARTS[kind](text, test, progress)
    if lines is None:
        return header, status
    if status == 0:
        replay.start_test(device, test)
    return header + "".join(lines), status


def hang(replay, device):
    """A wedged drive: smartctl's banner, then a forked child and the parent both sleep."""
    sys.stdout.write(replay.header(device) if device else GENERIC_HEADER)
    sys.stdout.flush()
    os.fork()
    time.sleep(HANG_SECONDS)
    return "", FAILDEV


def scan_unopened(replay):
    """``smartctl --scan`` from the ``--scan-open`` recording: what smartctl lists without opening the devices."""
    name = file_name(["--scan-open"])
    if not replay.has(name):
        return None
    out = []
    for line in replay.read(name).splitlines():
        match = re.match(r"^(\S+)\s+-d\s+(\S+)", line)
        if match:
            kind = "scsi" if match.group(2) in ("ata", "sat", "scsi") else match.group(2)
            out.append("%s -d %s # %s, %s device" % (match.group(1), kind, match.group(1), PROTOCOLS.get(kind, "SCSI")))
    return "\n".join(out) + "\n"


def detect_type(replay, device):
    """``smartctl -d test DEVICE`` from the type of the device's recorded --all call."""
    kind = replay.recorded_type(device)
    if kind is None:
        return None
    protocol = PROTOCOLS.get(kind, "SCSI")
    return "%s%s: Device of type '%s' [%s] detected\n%s: Device of type '%s' [%s] opened\n" % (
        replay.header(device),
        device,
        kind,
        protocol,
        device,
        kind,
        protocol,
    )


def synthesized(replay, args, device):
    """An answer for a call the folder has no recording of, where smartctl's own words are known; else None."""
    if args == ["--scan"]:
        return scan_unopened(replay)
    if args[:2] == ["-d", "test"] and device:
        return detect_type(replay, device)
    return None


def fail_unknown(replay, args, device):
    if device and not replay.knows(device):
        return replay.header(device) + "Smartctl open device: %s failed: No such device\n" % device, FAILDEV
    sys.stderr.write("fake smartctl: no recording of 'smartctl %s' (%s) in %s\n" % (" ".join(args), file_name(args), replay.folder))
    return "", FAILCMD


def run(argv, env):
    """Return (stdout text, exit status) for one call."""
    here = os.path.dirname(os.path.abspath(__file__))
    folder = env.get("FAKE_SMARTCTL_DIR") or os.path.join(here, "fixture")
    replay = Replay(folder, env.get("FAKE_SMARTCTL_STATE"))
    replay.log_call(argv)

    args = list(argv)
    power_mode = None
    while "-n" in args:
        index = args.index("-n")
        power_mode = args[index + 1] if index + 1 < len(args) else None
        del args[index : index + 2]
    device = args[-1] if args and not args[-1].startswith("-") else None

    if replay.hangs(args, device):
        return hang(replay, device)

    if power_mode and device and replay.in_standby(device) and power_mode.split(",")[0] in ("standby", "sleep", "idle"):
        return replay.header(device) + "Device is in STANDBY mode, exit(2)\n", 2

    if "-t" in args:
        index = args.index("-t")
        test = args[index + 1] if index + 1 < len(args) else ""
        if test not in TEST_TYPES:
            sys.stderr.write("=======> INVALID ARGUMENT TO -t: %s\n" % test)
            return "", FAILCMD
        return start_selftest(replay, args, device, test)

    name = file_name(args)
    if not replay.has(name):
        text = synthesized(replay, args, device)
        return (text, 0) if text is not None else fail_unknown(replay, args, device)
    text = replay.read(name)
    if "--all" in args and device:
        started = replay.started_test(device)
        if started:
            text = show_running(text, started["test"])
    return text, replay.exit_status(name)


def main(argv=None):
    text, status = run(sys.argv[1:] if argv is None else argv, os.environ)
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
