#!/usr/bin/env bash
# A playbook rather than the usual role: ansible-test would run the target as
# role `inbox`, which resolves to the collection's own inbox role first.
set -eux
ansible-playbook -i ../../inventory runme.yml "$@"
