#!/bin/sh
# compare_version.sh A OP B: whether version A compares to B as OP says
# (-eq -ne -ge -gt -le -lt), ordering as `sort -V` does.
set -eu
if [ $# -ne 3 ]; then
	echo "usage: $0 VERSION1 -eq|-ne|-ge|-gt|-le|-lt VERSION2" >&2
	exit 2
fi
a=$1 op=$2 b=$3
if [ "$a" = "$b" ]; then
	order=0
elif [ "$(printf '%s\n%s\n' "$a" "$b" | sort -V | head -n 1)" = "$a" ]; then
	order=-1
else
	order=1
fi
case "$op" in
-eq) [ "$order" -eq 0 ] ;;
-ne) [ "$order" -ne 0 ] ;;
-ge) [ "$order" -ge 0 ] ;;
-gt) [ "$order" -gt 0 ] ;;
-le) [ "$order" -le 0 ] ;;
-lt) [ "$order" -lt 0 ] ;;
*)
	echo "$0: unknown operator $op" >&2
	exit 2
	;;
esac
