# -*- coding: utf-8 -*-
# Copyright (c) datasteward.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host metrics engines: the psutil snapshot (``snapshot``), the pattoo agent
payload (``pattoo``), the Prometheus textfile writer (``textfile``) and our
series built from module results (``series``), and the HTTP push with a
private spool (``spool``, ``http``). No AnsibleModule in any of them."""
