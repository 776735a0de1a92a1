#!/usr/bin/env bash
# End-to-end demo of the reference sync system, with the real binaries:
# start sync-server on a free port, create a user, set up two devices,
# sync documents between them, make a conflict and resolve it.
# Exits non-zero if any step does not give the expected result.
#
#   bash ci/demo.sh            # release build
#   PROFILE=dev bash ci/demo.sh
set -euo pipefail

cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
cargo build --quiet --profile "$profile" --bin sync-server --bin sync-client
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
coproc SERVER { exec "$bin/sync-server" serve --data "$work/server" --listen 127.0.0.1:0; }
server_pid=$SERVER_PID
read -r line <&"${SERVER[0]}"
url=${line#listening on }
echo "server at $url"

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
for i in $(seq 1 20); do echo "message $i" | laptop put "mail.$i" >/dev/null; done
laptop sync
phone sync
[ "$(phone get mail.7)" = "message 7" ] || fail "phone does not have mail.7"
phone list | head -3

step "edit the same document on both, sync both: a conflict, nothing lost"
echo "laptop's version" | laptop put mail.1 >/dev/null
echo "phone's version" | phone put mail.1 >/dev/null
laptop sync
phone sync
[ "$(phone conflicts)" = "mail.1" ] || fail "the phone should hold the conflict on mail.1"
phone conflicts mail.1

step "resolve on the phone, sync both"
echo "merged version" | phone resolve mail.1
phone sync
laptop sync
[ "$(laptop get mail.1)" = "merged version" ] || fail "the laptop did not get the resolution"
[ -z "$(laptop conflicts)" ] || fail "conflicts left on the laptop"

step "the server holds only ciphertext"
if grep -rq "message 7" "$work/server"; then fail "plaintext found in the server's data"; fi
echo "no plaintext in $work/server"

echo
echo "demo: OK"
