#!/bin/sh
# /run/host-services: where the host's services appear in the guest (the
# forwarded ssh agent, with ssh.forwardAgent), readable by the user only.
set -eu
mkdir -p -m 700 /run/host-services
chown "${LIMA_CIDATA_USER}" /run/host-services
