#!/usr/bin/env bash
# Installs the servers provgate is measured against, from Debian's packages:
# dnsmasq and nginx as usual; tftpd-hpa and atftpd conflict as packages, so
# their binaries are unpacked side by side into .bench/peers instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS_DIR:-.bench/peers}
mkdir -p "$PEERS"
if [ -x "$PEERS/in.tftpd" ] && [ -x "$PEERS/atftpd" ] && command -v dnsmasq >/dev/null && command -v nginx >/dev/null; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "bench-peers: run as root to install tftpd-hpa, atftpd, dnsmasq and nginx (or put them in $PEERS and PATH)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends dnsmasq-base nginx-light libwrap0 libpcre2-8-0 >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq tftpd-hpa atftpd 2>/dev/null)
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
install -m 0755 "$tmp/x/usr/sbin/in.tftpd" "$tmp/x/usr/sbin/atftpd" "$PEERS/"
echo "bench-peers: $("$PEERS/in.tftpd" -V 2>&1 | head -n1); atftpd $(dpkg-deb -f "$tmp"/atftpd_*.deb Version); $(dnsmasq --version | head -n1); $(nginx -v 2>&1)"
