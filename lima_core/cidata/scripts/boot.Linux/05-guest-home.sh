#!/bin/sh
# Instances made before Lima 2.1 have their home at /home/<user>.linux; the
# other name points at the real one, so paths written either way work.
set -eu
case "${LIMA_CIDATA_HOME}" in
/home/*.linux) other=${LIMA_CIDATA_HOME%.linux}.guest ;;
/home/*.guest) other=${LIMA_CIDATA_HOME%.guest}.linux ;;
*) exit 0 ;;
esac
[ -e "$other" ] || [ -L "$other" ] || ln -s "${LIMA_CIDATA_HOME}" "$other"
