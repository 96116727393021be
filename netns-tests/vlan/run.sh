#!/bin/bash
# netns-tests/vlan/run.sh: the name test.sh's VLAN hook looks for; see ../run-vlan.sh.
exec "$(dirname "$0")/../run-vlan.sh" "$@"
