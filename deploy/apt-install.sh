#!/bin/sh
# apt-install.sh [--no-services UNIT...] -- PACKAGE...
#
# Installs the Debian packages not installed yet, without letting their
# maintainer scripts start any service (a policy-rc.d that denies every
# start, restored afterwards), then disables and stops the units named
# after --no-services: the test peers (Kamailio on 5060, rtpengine on NG
# 2223 and media 30000-40000, PostgreSQL) must never hold xtrunk's ports
# or run behind the operator's back. Works with and without systemd as
# PID 1 (containers, CI).
set -eu

units=""
if [ "${1:-}" = "--no-services" ]; then
	shift
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do units="$units $1"; shift; done
fi
[ "${1:-}" = "--" ] && shift

missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
	echo "installing:$missing"
	policy=/usr/sbin/policy-rc.d
	saved=""
	if [ -e "$policy" ]; then
		saved=$(mktemp)
		cp -p "$policy" "$saved"
	fi
	restore() {
		if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi
	}
	trap restore EXIT INT TERM
	printf '#!/bin/sh\n# written by xtrunk deploy/apt-install.sh while installing: no service starts\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
	restore
	trap - EXIT INT TERM
fi

for u in $units; do
	if [ -d /run/systemd/system ]; then
		# systemd runs: stop and disable for good
		systemctl disable --now "$u.service" >/dev/null 2>&1 || true
	else
		# no systemd as PID 1: remove the wants symlinks and SysV links
		deb-systemd-helper disable "$u.service" >/dev/null 2>&1 || true
		if [ -x "/etc/init.d/$u" ]; then
			update-rc.d "$u" disable >/dev/null 2>&1 || true
			"/etc/init.d/$u" status >/dev/null 2>&1 && "/etc/init.d/$u" stop >/dev/null 2>&1 || true
		fi
	fi
done
exit 0
