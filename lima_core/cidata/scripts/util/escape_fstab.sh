#!/bin/sh
# escape_fstab.sh TEXT: TEXT as one fstab field (backslash, space, tab, newline and "#" as octal escapes).
printf '%s' "$1" | sed -e 's/\\/\\134/g' -e 's/ /\\040/g' -e 's/\t/\\011/g' -e 's/#/\\043/g' |
	awk 'NR > 1 { printf "\\012" } { printf "%s", $0 }'
echo
