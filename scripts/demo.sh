#!/usr/bin/env bash
# The provgate demo: everything on loopback, real clients, exits 0 when every step did what it says.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=${DEMO_DIR:-.demo}
CLOUD=${DEMO_CLOUD:-127.0.0.1:9443}
BIN=bin
PKI=$DEMO/pki
SITE=demo-site
CURL_MTLS=(curl -sS --cacert "$PKI/ca.crt" --cert "$PKI/site-$SITE.crt" --key "$PKI/site-$SITE.key")

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() { printf '    FAILED: %s\n' "$*" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

step "Fresh demo folder $DEMO"
rm -rf "$DEMO"
mkdir -p "$DEMO"

step "Cloud PKI: CA, origin server certificate, client certificate for site $SITE"
$BIN/provgate-origin pki init --dir "$PKI" --site "$SITE"

step "Sample data: inventory (5 phones, 3+ brands), templates, a 4 MB firmware image"
cp -r testdata/origin-sample "$DEMO/data"
head -c $((4 << 20)) /dev/urandom > "$DEMO/data/files/common/sip.ld"
grep -E '^\s+(- mac|brand|model):' "$DEMO/data/inventory.yaml" | paste - - - | sed 's/^ */    /'

step "Start provgate-origin on $CLOUD"
$BIN/provgate-origin serve --data "$DEMO/data" --tls-dir "$PKI" --listen "$CLOUD" 2>"$DEMO/origin.log" &
pids+=($!)
for _ in $(seq 100); do
	"${CURL_MTLS[@]}" -o /dev/null "https://$CLOUD/v1/inventory" 2>/dev/null && break
	sleep 0.1
done
ok "origin is up (log: $DEMO/origin.log)"

step "A device's rendered config over mutual TLS (Yealink 00:15:65:12:34:56)"
echo "    \$ curl --cert $PKI/site-$SITE.crt --key … --cacert $PKI/ca.crt 'https://$CLOUD/v1/files/001565123456.cfg?mac=001565123456&brand=yealink'"
"${CURL_MTLS[@]}" -D "$DEMO/headers" "https://$CLOUD/v1/files/001565123456.cfg?mac=001565123456&brand=yealink&model=T46S" | sed 's/^/    | /'
grep -iE '^(etag|cache-control|repr-digest|content-length):' "$DEMO/headers" | sed 's/^/    /'
grep -q '^HTTP/[0-9.]* 200' "$DEMO/headers" || fail "expected 200"
ok "200 with ETag, max-age and Repr-Digest"

step "The firmware image, verified against its Repr-Digest"
"${CURL_MTLS[@]}" -D "$DEMO/headers" -o "$DEMO/sip.ld.fetched" "https://$CLOUD/v1/files/sip.ld"
want=$(grep -i '^repr-digest:' "$DEMO/headers" | sed -E 's/.*sha-256=:([^:]*):.*/\1/')
got=$(openssl dgst -sha256 -binary "$DEMO/sip.ld.fetched" | base64)
[ "$want" = "$got" ] || fail "digest mismatch"
ok "$(stat -c %s "$DEMO/sip.ld.fetched") bytes, sha-256 $got"

step "An unknown MAC is refused by the cloud"
code=$("${CURL_MTLS[@]}" -o "$DEMO/body" -w '%{http_code}' "https://$CLOUD/v1/files/0015650000ff.cfg?mac=0015650000ff")
sed 's/^/    | /' "$DEMO/body"
[ "$code" = 403 ] || fail "expected 403, got $code"
ok "403 unknown_mac"

step "A client without a certificate does not get past the TLS handshake"
if curl -sS --cacert "$PKI/ca.crt" -o /dev/null "https://$CLOUD/v1/inventory" 2>"$DEMO/err"; then
	fail "handshake accepted without a client certificate"
fi
sed 's/^/    | curl: /' "$DEMO/err"
sleep 0.2
grep -m1 'handshake error' "$DEMO/origin.log" | sed 's/^/    | origin: /' || true
ok "refused"

step "Stop the origin"
cleanup
pids=()
ok "stopped"
printf '\nDemo finished.\n'
