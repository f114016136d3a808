#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: smart_info
short_description: Report SMART health of drives, with a verdict, site labels and missing drives
version_added: 0.1.0
description:
  - Reads the SMART data of SATA, SAS, NVMe, USB-bridged and MegaRAID pass-through drives with C(smartctl), through the pySMART library,
    and returns one entry per drive with its identity, the drive's own self-assessment, attributes, NVMe health log and last self-tests.
  - Adds a verdict of its own, RV(devices[].health), with the reasons. V(failing) when the drive's self-assessment failed, an attribute is
    failing now, smartctl's exit status says DISK FAILING or prefail attributes below threshold, an NVMe critical warning other than
    temperature is set or the NVMe available spare is below its threshold. V(warning) when a raw value of ATA attribute 5, 187, 188, 197
    or 198 (or the NVMe media error count, or the SCSI grown defect list) is not zero, an attribute failed in the past, the NVMe wear
    or an ATA SSD's used life (attributes 177, 202, 231, 233) is over O(wear_limit), the temperature is over its limit, the NVMe
    temperature warning is set, or the last self-test failed.
    V(unknown) when the drive could not be read or did not answer within O(timeout); the other drives are still read.
  - With O(disk_map), each drive gets its site label, and drives in the map that are not present (RV(missing)) or present but not in the
    map (RV(unmapped)) are listed, so a swapped or dead drive shows up.
  - Must run as root (C(become=true)); smartctl needs raw access to the drives.
author:
  - datasteward.storage maintainers (@datasteward)
extends_documentation_fragment:
  - datasteward.storage._attributes
  - datasteward.storage._attributes.INFO_MODULE
  - datasteward.storage._smart
options:
  standby:
    description:
      - Do not wake drives that are spun down (C(smartctl -n standby)).
      - A sleeping drive is reported with RV(devices[].standby=true) and health V(unknown).
    type: bool
    default: false
  disk_map:
    description:
      - Which site label belongs to which drive, matched by serial number or world wide name.
      - Either the path of a file on the managed host with one C(LABEL SERIAL WWN) line per drive (for example
        C(P01 ZA12JCHM 0x5000c500858bfea7); blank lines and C(#) comments are ignored), or a list of dicts with C(label), C(serial)
        and optionally C(wwn) keys.
    type: raw
  acknowledge:
    description:
      - Known, stable counters not to warn about while their raw value does not grow.
      - When the drive's raw value is at most the acknowledged O(acknowledge[].raw), the counter is listed in RV(devices[].acknowledged)
        instead of RV(devices[].reasons); when it has grown, the drive warns again.
    type: list
    elements: dict
    suboptions:
      serial:
        description:
          - Serial number of the drive. Preferred over O(acknowledge[].device), which can change between boots.
          - One of O(acknowledge[].serial) and O(acknowledge[].device) is required.
        type: str
      device:
        description:
          - Device name of the drive as in RV(devices[].name), used when O(acknowledge[].serial) is not given.
        type: str
      attribute:
        description:
          - The counter, an ATA attribute ID (V(5)) or name (V(Reallocated_Sector_Ct)), V(media_errors) (NVMe) or
            V(grown_defects) (SCSI).
        type: str
        required: true
      raw:
        description:
          - The raw value that is known and accepted.
        type: int
        required: true
  temperature_limit_hdd:
    description:
      - Temperature in degrees Celsius above which a rotating drive warns.
    type: int
    default: 60
  temperature_limit_ssd:
    description:
      - Temperature in degrees Celsius above which a solid state drive (SATA, SAS or NVMe) warns.
    type: int
    default: 70
  wear_limit:
    description:
      - Used life in percent above which a drive warns. For NVMe its C(Percentage Used); for an ATA SSD 100 minus the normalised value
        of attribute 177, 202, 231 or 233, which count the remaining rated life down from 100.
    type: int
    default: 90
notes:
  - smartctl's exit status is kept in RV(devices[].exit_status), with the meaning of each bit set in RV(devices[].exit_status_flags).
  - A drive in standby cannot be identified without waking it, so with O(standby=true) its disk map entry may be listed in RV(missing).
seealso:
  - module: datasteward.storage.smart_selftest
  - name: smartctl(8)
    description: The smartctl manual page, including its exit status bits.
    link: https://www.smartmontools.org/browser/trunk/smartmontools/smartctl.8.in
"""

EXAMPLES = r"""
- name: Read every drive smartctl finds
  datasteward.storage.smart_info:
  become: true
  register: smart

- name: Fail when a drive is failing
  ansible.builtin.assert:
    that: smart.devices | selectattr('health', 'equalto', 'failing') | list | length == 0
    fail_msg: "{{ smart.devices | selectattr('health', 'equalto', 'failing') | map(attribute='name') | list }} failing"

- name: Read drives behind a MegaRAID controller without waking sleeping ones, with the site's disk map
  datasteward.storage.smart_info:
    devices:
      - name: /dev/bus/0
        interface: megaraid,16
      - name: /dev/bus/0
        interface: sat+megaraid,17
    standby: true
    disk_map: /etc/datasteward/disk-map
  become: true
  register: smart

- name: Accept eight reallocated sectors on one drive, but warn again if there are more
  datasteward.storage.smart_info:
    acknowledge:
      - serial: ZA12JCHM
        attribute: Reallocated_Sector_Ct
        raw: 8
  become: true
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
      description: Model (device model, product or model number).
      type: str
      sample: OOS12000G
    serial:
      description: Serial number.
      type: str
      sample: 00008AXB
    wwn:
      description: World wide name, V(0x...) for ATA and SCSI, V(eui....) for the NVMe namespace EUI-64.
      type: str
      sample: "0x5000c500a4847915"
    firmware:
      description: Firmware version.
      type: str
      sample: OOS1
    capacity_bytes:
      description: User capacity in bytes.
      type: int
      sample: 12000138625024
    rotation_rate:
      description: Rotation rate in rpm; null for solid state drives.
      type: int
      sample: 7200
    is_ssd:
      description: Whether the drive is solid state.
      type: bool
      sample: false
    smart_capable:
      description: Whether the drive supports SMART.
      type: bool
      sample: true
    smart_enabled:
      description: Whether SMART is enabled on the drive.
      type: bool
      sample: true
    assessment:
      description:
        - The drive's SMART self-assessment as pySMART reads it from smartctl, V(PASS) or V(FAIL) (V(WARN) when an attribute failed
          in the past); null when the drive has none.
      type: str
      sample: PASS
    assessment_text:
      description: The self-assessment in smartctl's words.
      type: str
      sample: PASSED
    temperature_c:
      description: Current temperature in degrees Celsius.
      type: int
      sample: 38
    power_on_hours:
      description: Power-on hours (ATA attribute 9, NVMe log, SCSI accumulated power on time).
      type: int
      sample: 252
    attributes:
      description: ATA SMART attributes; empty for other drives.
      type: list
      elements: dict
      sample:
        - id: 5
          name: Reallocated_Sector_Ct
          value: 100
          worst: 100
          thresh: 10
          type: Pre-fail
          updated: Always
          when_failed: "-"
          raw: "0"
          raw_int: 0
    nvme:
      description: NVMe SMART/Health log; null for other drives.
      type: dict
      sample:
        critical_warning: 0
        available_spare: 100
        available_spare_threshold: 10
        percentage_used: 0
        media_errors: 0
        error_log_entries: 5
        unsafe_shutdowns: 4
        power_cycles: 9
        errors: []
    scsi:
      description: SCSI counters (C(grown_defects), C(non_medium_errors)); null for other drives.
      type: dict
      sample:
        grown_defects: 0
        non_medium_errors: 0
    self_tests:
      description: The most recent self-test log entries (up to five), newest first.
      type: list
      elements: dict
      sample:
        - num: 1
          type: Short offline
          status: Completed without error
          remaining: "00%"
          hours: "238"
          lba: "-"
    self_test_running:
      description: Whether a self-test is in progress.
      type: bool
      sample: false
    self_test_progress_percent:
      description: How much of the running self-test is done, in percent; null when none runs.
      type: int
      sample: 70
    standby:
      description: Whether the drive was spun down and was not woken (O(standby=true)).
      type: bool
      sample: false
    timed_out:
      description:
        - Whether smartctl did not answer for this drive within O(timeout) (it was killed); RV(devices[].health) is then
          V(unknown) and RV(devices[].reasons) names the device, the timeout and the smartctl call.
      type: bool
      sample: false
    exit_status:
      description: smartctl's exit status bitmask for the drive's query.
      type: int
      sample: 0
    exit_status_flags:
      description: The meaning of each bit set in RV(devices[].exit_status).
      type: list
      elements: str
      sample: []
    label:
      description: Site label from O(disk_map); null without a map or when the drive is not in it.
      type: str
      sample: P01
    health:
      description: Our verdict, V(ok), V(warning), V(failing) or V(unknown).
      type: str
      sample: ok
    reasons:
      description: Why the verdict is not V(ok).
      type: list
      elements: str
      sample: ["Reallocated_Sector_Ct (5) raw value is 8"]
    acknowledged:
      description: Counters that would warn but are acknowledged by O(acknowledge) and have not grown.
      type: list
      elements: dict
      sample:
        - attribute: Reallocated_Sector_Ct (5)
          raw: 8
          acknowledged_raw: 8
missing:
  description: O(disk_map) entries with no drive present; empty without a map.
  returned: always
  type: list
  elements: dict
  sample:
    - label: P02
      serial: ZA12JCHN
      wwn: "0x5000c500858bfea8"
unmapped:
  description: Identified drives that are not in O(disk_map); empty without a map.
  returned: always
  type: list
  elements: dict
  sample:
    - name: /dev/sdc
      serial: 8DG3J2ZD
      wwn: "0x5000cca253066624"
      model: HUH721212AL4204
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.datasteward.storage.plugins.module_utils._disks.smart import (
    HAS_PYSMART,
    PYSMART_IMPORT_ERROR,
    SmartError,
    find_smartctl,
    require_root,
    smart_argument_spec,
    smart_info,
)


def main():
    module = AnsibleModule(
        argument_spec=smart_argument_spec(
            standby=dict(type="bool", default=False),
            disk_map=dict(type="raw"),
            acknowledge=dict(
                type="list",
                elements="dict",
                options=dict(
                    serial=dict(type="str"),
                    device=dict(type="str"),
                    attribute=dict(type="str", required=True),
                    raw=dict(type="int", required=True),
                ),
                required_one_of=[["serial", "device"]],
            ),
            temperature_limit_hdd=dict(type="int", default=60),
            temperature_limit_ssd=dict(type="int", default=70),
            wear_limit=dict(type="int", default=90),
        ),
        supports_check_mode=True,
    )
    if not HAS_PYSMART:
        module.fail_json(msg=missing_required_lib("pySMART"), exception=PYSMART_IMPORT_ERROR)
    params = module.params
    limits = dict((key, params[key]) for key in ("temperature_limit_hdd", "temperature_limit_ssd", "wear_limit"))
    try:
        smartctl = find_smartctl(params["smartctl_path"], module.get_bin_path)
        require_root("smart_info")
        result = smart_info(
            smartctl,
            devices=params["devices"],
            standby=params["standby"],
            disk_map=params["disk_map"],
            acknowledge=params["acknowledge"],
            limits=limits,
            timeout=params["timeout"],
        )
    except SmartError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
