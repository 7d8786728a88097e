#!/usr/bin/env bash
# Smoke test of one `pilot` program, as a release runs it on each binary:
#
#   bash scripts/smoke.sh dist/pilot-x86_64-unknown-linux-gnu
#   bash scripts/smoke.sh deno run -A --unstable-net dist/pilot.js
#
# `--version` and `help --json` answer, then two nodes on loopback in
# temporary homes: A handshakes B by endpoint, B approves A by fingerprint,
# A sends a JSON message with an id, and B's inbox holds it. Both nodes are
# stopped and the homes removed however it ends. Needs only bash, grep, sed.
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: bash scripts/smoke.sh PILOT [ARGS...]" >&2
  exit 2
fi
PILOT=("$@")
step() { echo "smoke: $*" >&2; }
fail() {
  echo "smoke: FAILED: $*" >&2
  exit 1
}
# The string value of "NAME" in one line of JSON (the first one).
field() { sed -nE "s/.*\"$1\":\"([^\"]*)\".*/\\1/p" | head -n 1; }

line=$("${PILOT[@]}" --version) || fail "--version exited $?"
[[ "$line" == "pilot "* ]] || fail "--version printed \"$line\""
step "$line"
"${PILOT[@]}" help --json | grep -q '"name":"daemon start"' || fail "help --json lists no daemon start"

A=$(mktemp -d "${TMPDIR:-/tmp}/pilot-smoke-a.XXXXXX")
B=$(mktemp -d "${TMPDIR:-/tmp}/pilot-smoke-b.XXXXXX")
chmod 700 "$A" "$B"
cleanup() {
  for home in "$A" "$B"; do
    "${PILOT[@]}" --home "$home" daemon stop --timeout 10s >/dev/null 2>&1 || true
    rm -rf "$home"
  done
}
trap cleanup EXIT
pilot() {
  local home=$1
  shift
  local out
  out=$("${PILOT[@]}" --home "$home" "$@" --json) || fail "pilot $* exited $?: $out"
  printf '%s\n' "$out"
}

step "starting two nodes on loopback (a first start creates each identity)"
b_listen=$(pilot "$B" daemon start --listen 127.0.0.1:0 | field listen)
pilot "$A" daemon start --listen 127.0.0.1:0 >/dev/null
[ -n "$b_listen" ] || fail "B reported no listen address"
a_fp=$(pilot "$A" info | field fingerprint)
b_address=$(pilot "$B" info | field address)
step "A handshakes B at $b_listen; B approves A ($a_fp)"
pilot "$A" handshake "$b_listen" --reason "release smoke test" >/dev/null
pilot "$B" approve "$a_fp" | grep -q '"status":"trusted"' || fail "approve did not trust A"
for _ in $(seq 1 100); do
  pilot "$A" trust | grep -q '"mutual":true' && break
  sleep 0.2
done
pilot "$A" trust | grep -q '"mutual":true' || fail "A never saw the trust as mutual"
step "A sends a JSON message with id smoke-1 to $b_address"
pilot "$A" send "$b_address" --type json --data '{"smoke":true}' --id smoke-1 >/dev/null
pilot "$B" inbox | grep -q '"id":"smoke-1"' || fail "B's inbox lacks smoke-1"
step "ok: handshake, approve, send and inbox work"
