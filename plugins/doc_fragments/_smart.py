# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The options and requirements shared by the SMART modules.

    Paired with ``smart_argument_spec()`` in ``plugins/module_utils/_disks/smart.py``:
    change both together.
    """

    DOCUMENTATION = r"""
requirements:
  - smartctl from smartmontools on the managed host.
  - pySMART (the Python package C(pySMART)) for the Python that runs the module.
options:
  smartctl_path:
    description:
      - Path of the smartctl executable.
      - When omitted, C(smartctl) is looked up on the E(PATH) and in C(/sbin), C(/usr/sbin) and C(/usr/local/sbin);
        if it is not there the module fails, naming the smartmontools package to install.
    type: path
  devices:
    description:
      - The drives.
      - When omitted, every drive that C(smartctl --scan-open) finds.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The device, as smartctl takes it, for example V(/dev/sda), V(/dev/nvme0) or V(/dev/bus/0) for a MegaRAID controller.
        type: str
        required: true
      interface:
        description:
          - The smartctl device type (C(smartctl -d)), for example V(sat), V(scsi), V(nvme), V(megaraid,28) or V(sat+megaraid,28).
          - When omitted, smartctl detects it (C(smartctl -d test)).
        type: str
  timeout:
    description:
      - Seconds each drive gets for all its smartctl calls (pySMART makes a few per drive).
      - A drive whose smartctl has not answered by then is reported with RV(devices[].timed_out=true) and a message naming the
        device and the timeout; smartctl is killed with every process it forked, and the other drives are still read.
      - Up to eight drives are read at once, so a drive that hangs delays the others by at most O(timeout).
      - Without O(devices), C(smartctl --scan-open) gets O(timeout) too. It opens every drive, so one that hangs blocks it;
        then the drives are listed with C(smartctl --scan), which opens none, with a warning, and each drive's type is detected
        (C(smartctl -d test)) when it is read.
      - A spun-down drive that smartctl wakes takes 10 to 20 seconds to answer; keep O(timeout) well above that.
    type: float
    default: 60
"""
