#!/bin/sh
# unescape_fstab.sh FIELD: an fstab field with its octal escapes (\040 \011 \012 \134 \043) decoded.
printf '%s' "$1" | sed -e 's/\\040/ /g' -e 's/\\011/\t/g' -e 's/\\043/#/g' -e 's/\\012/\n/g' -e 's/\\134/\\/g'
echo
