#!/bin/sh
# build-deb.sh BINARY VERSION OUTDIR: dist/xtrunk_<version>_amd64.deb with
# dpkg-deb alone (no network, no fakeroot: --root-owner-group).
#
# VERSION is `git describe` output; a Debian version must start with a
# digit and its upstream part has no "-": a leading "v" is dropped, "-"
# becomes "+" (v1.2.0-3-gabc-dirty: 1.2.0+3+gabc+dirty), and a bare
# commit (no tag yet) becomes 0~gitHASH.
set -eu
bin=$1 ver=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
deploy=$(dirname "$here")

debver=${ver#v}
if ! printf '%s' "$debver" | grep -Eq '^[0-9]+\.'; then
	debver="0~git$debver"
fi
debver=$(printf '%s' "$debver" | tr -c 'A-Za-z0-9.+~\n' '+')

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT INT TERM
install -D -m 0755 "$bin" "$root/usr/bin/xtrunk"
for u in xtrunk xtrunk-relay xtrunk-sip xtrunk-api; do
	install -D -m 0644 "$deploy/systemd/$u.service" "$root/lib/systemd/system/$u.service"
done
install -D -m 0640 "$here/xtrunk.yaml" "$root/etc/xtrunk/xtrunk.yaml"
install -d -m 0750 "$root/var/lib/xtrunk"
install -d "$root/DEBIAN"
size=$(du -sk "$root" | cut -f1)
sed -e "s/@VERSION@/$debver/" -e "s/@SIZE@/$size/" "$here/control.in" >"$root/DEBIAN/control"
install -m 0644 "$here/conffiles" "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done

mkdir -p "$out"
deb="$out/xtrunk_${debver}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
