#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: smart_selftest
short_description: Start SMART self-tests on drives
version_added: 0.1.0
description:
  - Starts a short, long (extended) or conveyance SMART self-test on each drive, through smartctl and the pySMART library.
  - A drive that is already running a self-test is reported with RV(devices[].state=running) and left alone (not changed).
  - The test runs in the drive's background; read the result later with M(datasteward.storage.smart_info)
    (RV(datasteward.storage.smart_info#module:devices[].self_tests)).
  - In check mode no test is started; drives that would get one are reported with RV(devices[].state=would_start) and C(changed).
  - Fails, after trying every drive, when a drive could not be read, did not answer within O(timeout) or does not support the test;
    the drives where a test was started are still reported.
  - Must run as root (C(become=true)).
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._smart
attributes:
  check_mode:
    support: full
    details:
      - Reads the drives, never starts a test.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - While the tests started by a first run are still running, a second run reports them as running and does not change anything.
      - Once they have finished, a new run starts new tests.
options:
  test:
    description:
      - The self-test to start. V(conveyance) exists on ATA drives only; NVMe drives run V(short) and V(long) when they support self-tests.
    type: str
    choices: [short, long, conveyance]
    default: short
seealso:
  - module: datasteward.storage.smart_info
"""

EXAMPLES = r"""
- name: Start a short self-test on every drive
  datasteward.storage.smart_selftest:
  become: true

- name: Start a long self-test on two drives
  datasteward.storage.smart_selftest:
    devices:
      - name: /dev/sda
      - name: /dev/nvme0
        interface: nvme
    test: long
  become: true
  register: selftest

- name: Show when the tests will be done
  ansible.builtin.debug:
    msg: "{{ selftest.devices | map(attribute='estimated_completion') | list }}"
"""

RETURN = r"""
devices:
  description: One entry per drive, in the order asked for or found.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The device as given to smartctl.
      type: str
      sample: /dev/sda
    interface:
      description: The smartctl device type used.
      type: str
      sample: sat
    model:
      description: Model of the drive.
      type: str
      sample: HS-SSD-C100 120G
    serial:
      description: Serial number of the drive.
      type: str
      sample: "30087840294"
    test:
      description: The test asked for.
      type: str
      sample: short
    state:
      description:
        - V(started) (a test was started), V(would_start) (check mode), V(running) (a test was already in progress),
          V(unsupported) (the drive does not offer this test) or V(failed) (the drive could not be read, did not answer within
          O(timeout), or smartctl did not start the test).
      type: str
      sample: started
    changed:
      description: Whether a test was started (or would be, in check mode) on this drive.
      type: bool
      sample: true
    message:
      description: What happened, in pySMART's or smartctl's words.
      type: str
      sample: Self-test started successfully
    progress_percent:
      description: How much of an already running test is done, in percent; null otherwise.
      type: int
      sample: 70
    estimated_completion:
      description: When smartctl expects the started test to finish (ATA drives only); null otherwise.
      type: str
      sample: Sat Nov 22 08:35:36 2025 UTC
    exit_status:
      description: smartctl's exit status bitmask for the C(-t) call; null when none was made.
      type: int
      sample: 0
    timed_out:
      description:
        - Whether smartctl did not answer for this drive within O(timeout) (it was killed); RV(devices[].state) is then V(failed).
        - When it was the C(-t) call that did not answer, the test may or may not have started; RV(devices[].message) says so.
      type: bool
      sample: false
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.datasteward.storage.plugins.module_utils._disks.smart import (
    HAS_PYSMART,
    PYSMART_IMPORT_ERROR,
    TEST_TYPES,
    SmartError,
    find_smartctl,
    require_root,
    smart_argument_spec,
    start_selftests,
)


def main():
    module = AnsibleModule(
        argument_spec=smart_argument_spec(
            test=dict(type="str", choices=list(TEST_TYPES), default="short"),
        ),
        supports_check_mode=True,
    )
    if not HAS_PYSMART:
        module.fail_json(msg=missing_required_lib("pySMART"), exception=PYSMART_IMPORT_ERROR)
    params = module.params
    try:
        smartctl = find_smartctl(params["smartctl_path"], module.get_bin_path)
        require_root("smart_selftest")
        result = start_selftests(smartctl, devices=params["devices"], test=params["test"], check_mode=module.check_mode, timeout=params["timeout"])
    except SmartError as exc:
        module.fail_json(msg=str(exc))
    for warning in result["warnings"]:
        module.warn(warning)
    if result["failed"]:
        module.fail_json(
            msg="could not start the %s self-test on %s"
            % (params["test"], "; ".join("%s (%s: %s)" % (item["name"], item["state"], item["message"]) for item in result["failed"])),
            changed=result["changed"],
            devices=result["devices"],
        )
    module.exit_json(changed=result["changed"], devices=result["devices"])


if __name__ == "__main__":
    main()
