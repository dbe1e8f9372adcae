#!/usr/bin/env bash
# The provgate demo, everything on loopback with real clients.
#   scripts/demo.sh        run every step and stop; exits 0 when each did what it says
#   scripts/demo.sh up     set up and leave cloud and gateway running (pids in .demo/)
#   scripts/demo.sh down   stop what 'up' started
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=${DEMO_DIR:-.demo}
CLOUD=${DEMO_CLOUD:-127.0.0.1:9443}
TFTP=${DEMO_TFTP:-127.0.0.1:6969}
HTTPS=${DEMO_HTTPS:-127.0.0.1:8443}
BIN=bin
PKI=$DEMO/pki
SITE=demo-site
CURL_MTLS=(curl -sS --cacert "$PKI/ca.crt" --cert "$PKI/site-$SITE.crt" --key "$PKI/site-$SITE.key")

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() { printf '    FAILED: %s\n' "$*" >&2; exit 1; }
indent() { sed 's/^/    | /'; }

stop_pid() { # stop_pid NAME
	local f="$DEMO/$1.pid"
	[ -f "$f" ] || return 0
	kill "$(cat "$f")" 2>/dev/null || true
	while kill -0 "$(cat "$f")" 2>/dev/null; do sleep 0.05; done
	rm -f "$f"
}

wait_for() { # wait_for DESCRIPTION COMMAND...
	local what=$1; shift
	for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	fail "$what did not come up"
}

setup() {
	step "Fresh demo folder $DEMO"
	stop_pid gateway; stop_pid origin
	rm -rf "$DEMO"
	mkdir -p "$DEMO"

	step "Cloud PKI: CA, origin server certificate, client certificate for site $SITE"
	$BIN/provgate-origin pki init --dir "$PKI" --site "$SITE" | indent

	step "Sample cloud data: inventory (3+ brands), templates, a 4 MB firmware image"
	cp -r testdata/origin-sample "$DEMO/data"
	head -c $((4 << 20)) /dev/urandom >"$DEMO/data/files/common/sip.ld"
	grep -E '^\s+(- mac|brand|model):' "$DEMO/data/inventory.yaml" | paste - - - | tr -s ' \t' ' ' | indent

	step "Gateway: cache key and configuration (loopback counts as LAN in the demo)"
	$BIN/provgate keygen --out "$DEMO/cache.key" | indent
	cat >"$DEMO/provgate.yaml" <<-YAML
	cloud:
	  url: https://$CLOUD
	  ca: pki/ca.crt
	  cert: pki/site-$SITE.crt
	  key: pki/site-$SITE.key
	lan:
	  networks: [127.0.0.0/8]
	tftp:
	  port: ${TFTP##*:}
	https:
	  port: ${HTTPS##*:}
	cache:
	  path: cache.db
	  key_file: cache.key
	  max_stale: 24h
	audit:
	  path: audit.db
	YAML
	$BIN/provgate check-config --config "$DEMO/provgate.yaml" | indent
}

start_origin() {
	step "Start provgate-origin on $CLOUD (max-age 1s, so the gateway revalidates often)"
	$BIN/provgate-origin serve --data "$DEMO/data" --tls-dir "$PKI" --listen "$CLOUD" --max-age 1s 2>>"$DEMO/origin.log" &
	echo $! >"$DEMO/origin.pid"
	wait_for "the origin" "${CURL_MTLS[@]}" -o /dev/null "https://$CLOUD/v1/inventory"
	ok "origin is up (log: $DEMO/origin.log)"
}

start_gateway() {
	step "Start provgate serve (TFTP on $TFTP, HTTPS on $HTTPS)"
	$BIN/provgate serve --config "$DEMO/provgate.yaml" 2>>"$DEMO/gateway.log" &
	echo $! >"$DEMO/gateway.pid"
	wait_for "the gateway" grep -q 'provgate ready' "$DEMO/gateway.log"
	grep 'provgate ready' "$DEMO/gateway.log" | indent
}

last_transfer() { sleep 0.2; grep -E 'msg="?transfer' "$DEMO/gateway.log" | tail -n1 | indent; }

full() {
	trap 'stop_pid gateway; stop_pid origin' EXIT
	setup
	start_origin

	step "The cloud over mutual TLS: a device's rendered config"
	echo "    \$ curl --cert $PKI/site-$SITE.crt --key … --cacert $PKI/ca.crt 'https://$CLOUD/v1/files/001565123456.cfg?mac=001565123456'"
	"${CURL_MTLS[@]}" -D "$DEMO/headers" "https://$CLOUD/v1/files/001565123456.cfg?mac=001565123456&brand=yealink&model=T46S" | indent
	grep -iE '^(etag|cache-control|repr-digest|content-length):' "$DEMO/headers" | sed 's/^/    /'
	grep -q '^HTTP/[0-9.]* 200' "$DEMO/headers" || fail "expected 200"
	ok "200 with ETag, max-age and Repr-Digest"

	step "The cloud refuses an unknown MAC"
	code=$("${CURL_MTLS[@]}" -o "$DEMO/body" -w '%{http_code}' "https://$CLOUD/v1/files/0015650000ff.cfg?mac=0015650000ff")
	indent <"$DEMO/body"
	[ "$code" = 403 ] || fail "expected 403, got $code"
	ok "403 unknown_mac"

	step "The cloud refuses a client without a certificate at the TLS handshake"
	if curl -sS --cacert "$PKI/ca.crt" -o /dev/null "https://$CLOUD/v1/inventory" 2>"$DEMO/err"; then
		fail "handshake accepted without a client certificate"
	fi
	indent <"$DEMO/err"
	ok "refused"

	start_gateway

	step "A legacy phone (Yealink 00:15:65:12:34:56) asks over TFTP: curl tftp://"
	echo "    \$ curl tftp://$TFTP/001565123456.cfg"
	curl -sS "tftp://$TFTP/001565123456.cfg" -o "$DEMO/001565123456.cfg"
	indent <"$DEMO/001565123456.cfg"
	cmp -s "$DEMO/001565123456.cfg" <("${CURL_MTLS[@]}" "https://$CLOUD/v1/files/001565123456.cfg?mac=001565123456") || fail "differs from the cloud's"
	last_transfer
	ok "byte-exact, fetched from the cloud over mutual TLS"

	step "A Cisco phone asks for SEP<MAC>.cnf.xml, and the firmware image with pin/tftp (provgate fetch)"
	$BIN/provgate fetch "tftp://$TFTP/SEP001B54AABB01.cnf.xml" | head -n 4 | indent
	$BIN/provgate fetch --blksize 1468 --out "$DEMO/sip.ld.tftp" "tftp://$TFTP/sip.ld"
	cmp -s "$DEMO/sip.ld.tftp" "$DEMO/data/files/common/sip.ld" || fail "firmware differs"
	last_transfer
	ok "$(stat -c %s "$DEMO/sip.ld.tftp") bytes, identical to the cloud's image"

	step "An unknown MAC gets nothing, decided locally from the synced inventory"
	before=$(grep -c 'path=/v1/files' "$DEMO/origin.log" || true)
	if curl -sS "tftp://$TFTP/0015650000ff.cfg" -o /dev/null 2>"$DEMO/err"; then fail "served an unknown MAC"; fi
	indent <"$DEMO/err"
	sleep 0.2; grep 'msg=denied' "$DEMO/gateway.log" | tail -n1 | indent
	[ "$(grep -c 'path=/v1/files' "$DEMO/origin.log" || true)" = "$before" ] || fail "the cloud was asked"
	ok "refused with 'access denied', and the cloud was not asked"

	step "A Yealink MAC asking as a Cisco (SEP<MAC>.cnf.xml) is refused: brand mismatch"
	if curl -sS "tftp://$TFTP/SEP001565123456.cnf.xml" -o /dev/null 2>/dev/null; then fail "served a brand mismatch"; fi
	sleep 0.2; grep 'msg=denied' "$DEMO/gateway.log" | tail -n1 | indent
	ok "refused"

	step "A modern phone over HTTPS: Digest credentials and a Yealink User-Agent (from 127.0.0.100, outside the allow-list)"
	UA='Yealink SIP-T46S 66.86.0.15 00:15:65:12:34:56'
	echo "    \$ curl -k --digest -u acme-prov:… -A '$UA' https://$HTTPS/001565123456.cfg"
	code=$(curl -sS -k --interface 127.0.0.100 --digest -u acme-prov:acme-http-secret -A "$UA" -o "$DEMO/https.cfg" -w '%{http_code}' "https://$HTTPS/001565123456.cfg")
	[ "$code" = 200 ] || fail "expected 200, got $code"
	cmp -s "$DEMO/https.cfg" "$DEMO/001565123456.cfg" || fail "differs from the TFTP copy"
	sleep 0.2; grep 'msg=request ' "$DEMO/gateway.log" | tail -n1 | indent
	ok "200 after a Digest challenge, same bytes as over TFTP, from the same encrypted cache"

	step "The same fetch with a wrong password"
	code=$(curl -sS -k --interface 127.0.0.100 --digest -u acme-prov:wrong-password -A "$UA" -o "$DEMO/body" -w '%{http_code}' "https://$HTTPS/001565123456.cfg")
	indent <"$DEMO/body"
	[ "$code" = 401 ] || fail "expected 401, got $code"
	ok "401: refused, and the failure counts towards the source's lockout"

	step "Every decision is audited: provgate audit"
	$BIN/provgate audit --config "$DEMO/provgate.yaml" --since 1h | indent
	$BIN/provgate audit --config "$DEMO/provgate.yaml" --mac 00:15:65:00:00:ff | grep -q unknown_mac || fail "no audit row"
	ok "allowed and denied requests with their reason codes"

	step "The cloud goes down; phones still get their last good files from the encrypted cache"
	stop_pid origin
	sleep 1.1 # past the 1s max-age: entries are stale now
	curl -sS "tftp://$TFTP/001565123456.cfg" -o "$DEMO/offline.cfg"
	cmp -s "$DEMO/offline.cfg" "$DEMO/001565123456.cfg" || fail "offline copy differs"
	last_transfer
	grep -q 'outcome=stale' "$DEMO/gateway.log" || fail "not served stale"
	ok "served stale (max_stale 24h) with the cloud down"

	step "What the gateway decides from while the cloud is away: provgate inventory"
	$BIN/provgate inventory --config "$DEMO/provgate.yaml" | indent
	ok "inventory kept encrypted in the cache, with its age"

	step "Secrets are not in the cache database"
	secret=Sip-Secret-1001-acme
	grep -c "$secret" "$DEMO/001565123456.cfg" | sed "s/^/    '$secret' in the served config: /"
	if grep -qa "$secret" "$DEMO"/cache.db*; then fail "plaintext in the database"; fi
	ls -l "$DEMO"/cache.db* | awk '{print "    " $5 " bytes  " $9}'
	ok "'$secret' appears nowhere in cache.db, its WAL or shm (AES-256-GCM, key in $DEMO/cache.key)"

	step "Stop everything"
	stop_pid gateway
	trap - EXIT
	ok "stopped"
	printf '\nDemo finished.\n'
}

case "${1:-}" in
"") full ;;
up)
	setup
	start_origin
	start_gateway
	printf '\nRunning. Cloud https://%s (mTLS, certs in %s), TFTP %s, HTTPS https://%s (loopback is LAN).\n' "$CLOUD" "$PKI" "$TFTP" "$HTTPS"
	printf 'Try: curl tftp://%s/001565123456.cfg    Logs: %s/*.log    Stop: make demo-down\n' "$TFTP" "$DEMO"
	;;
down)
	stop_pid gateway
	stop_pid origin
	echo "stopped"
	;;
*) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
