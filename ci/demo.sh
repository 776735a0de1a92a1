#!/usr/bin/env bash
# End-to-end demo of the reference sync system, with the real binaries:
# start sync-server on a free port, create a user, set up two devices,
# sync documents between them, make a conflict and resolve it, move a
# blob, deliver mail through sync-mx and read it on the other device.
# Exits non-zero if any step does not give the expected result.
#
#   bash ci/demo.sh            # release build
#   PROFILE=dev bash ci/demo.sh
set -euo pipefail

cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
cargo build --quiet --profile "$profile" --bin sync-server --bin sync-client --bin sync-mx
bin=target/$([ "$profile" = dev ] && echo debug || echo "$profile")

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

step "start sync-server on a free port"
export SYNC_SERVICE_TOKEN=demo-service-token
coproc SERVER { exec "$bin/sync-server" serve --data "$work/server" --listen 127.0.0.1:0 --services-listen 127.0.0.1:0; }
server_pid=$SERVER_PID
read -r line <&"${SERVER[0]}"
# "listening on http://A, services on http://B"
url=${line#listening on }
url=${url%%,*}
services=${line##*services on }
echo "server at $url, services at $services"

step "create user alice"
account=$("$bin/sync-server" user add alice --json --data "$work/server")
user=$(sed -E 's/.*"user_id":"([^"]+)".*/\1/' <<<"$account")
export SYNC_TOKEN=$(sed -E 's/.*"token":"([^"]+)".*/\1/' <<<"$account")
export SYNC_PASSPHRASE="correct horse battery staple"
echo "user id $user"

laptop() { "$bin/sync-client" --dir "$work/laptop" "$@"; }
phone() { "$bin/sync-client" --dir "$work/phone" "$@"; }

step "set up two devices (the laptop creates the secret, the phone opens it)"
laptop init --server "$url" --user "$user"
phone init --server "$url" --user "$user"
if SYNC_PASSPHRASE=wrong "$bin/sync-client" --dir "$work/tablet" init --server "$url" --user "$user" 2>"$work/err"; then
  fail "a wrong passphrase was accepted"
fi
echo "wrong passphrase refused: $(cat "$work/err")"

step "write on the laptop, sync both"
for i in $(seq 1 20); do echo "message $i" | laptop put "note.$i" >/dev/null; done
laptop sync
phone sync
[ "$(phone get note.7)" = "message 7" ] || fail "phone does not have note.7"
phone list | head -3

step "edit the same document on both, sync both: a conflict, nothing lost"
echo "laptop's version" | laptop put note.1 >/dev/null
echo "phone's version" | phone put note.1 >/dev/null
laptop sync
phone sync
[ "$(phone conflicts)" = "note.1" ] || fail "the phone should hold the conflict on note.1"
phone conflicts note.1

step "resolve on the phone, sync both"
echo "merged version" | phone resolve note.1
phone sync
laptop sync
[ "$(laptop get note.1)" = "merged version" ] || fail "the laptop did not get the resolution"
[ -z "$(laptop conflicts)" ] || fail "conflicts left on the laptop"

step "a 3 MB blob: encrypted while uploading, verified while downloading"
head -c 3000000 /dev/urandom >"$work/photo.jpg"
laptop blob put photos p1 "$work/photo.jpg"
phone blob get photos p1 -o "$work/photo.out"
cmp "$work/photo.jpg" "$work/photo.out" || fail "the blob came back different"
phone blob list

step "mail: sync-mx delivers to the user's age key; the laptop processes it"
mkdir "$work/maildir"
for i in 1 2 3; do
  printf 'From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: hello %s\r\nDate: Tue, 1 Jul 2025 10:0%s:00 +0000\r\n\r\nbody of message %s\r\n' "$i" "$i" "$i" >"$work/maildir/$i.eml"
done
"$bin/sync-mx" deliver --server "$services" --user "$user" "$work/maildir"
if "$bin/sync-mx" deliver --server "$services" --user nobody "$work/maildir" 2>"$work/err"; then
  fail "delivery to an unknown user succeeded"
fi
echo "unknown user refused: $(cat "$work/err")"
laptop mail fetch

step "the phone shows the inbox from metadata, opens one message on demand"
phone sync
phone mail list
[ "$(phone mail list | wc -l)" = 3 ] || fail "the phone's inbox should list 3 messages"
id=$(phone mail list --json | sed -nE 's/.*"id": "([^"]+)".*/\1/p' | head -1)
phone mail open "$id" | grep -q "body of message" || fail "message $id did not open"

step "the server holds only ciphertext"
if grep -rqE "message 7|body of message" "$work/server"; then fail "plaintext found in the server's data"; fi
echo "no plaintext in $work/server"

echo
echo "demo: OK"
