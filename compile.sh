#!/usr/bin/env bash
# Builds single-file `pilot` binaries with `deno compile` into dist/.
#
#   bash compile.sh                 # all four targets (needs to download each runtime)
#   bash compile.sh x86_64-unknown-linux-gnu
#   DENORT_BIN=/path/to/denort bash compile.sh   # use a local runtime (host target only)
#   bash compile.sh --verify dist/pilot-x86_64-unknown-linux-gnu  # only the proof below
#
# `deno compile` embeds a runtime ("denort") per target, which it downloads
# unless DENORT_BIN names one. Where it can be neither downloaded nor found,
# this script stops with a clear message instead of producing anything.
#
# A binary for the host target is run before it counts as built: its
# `--version` must print this version of Pilot and `help --json` Pilot's
# catalog (a DENORT_BIN naming a plain `deno` gives a file that is only Deno).
# Binaries for other targets cannot run here and are reported as not run.
# OUT_DIR (default dist) is where the binaries go.
set -euo pipefail
cd "$(dirname "$0")"

DENO=${DENO:-deno}
if ! command -v "$DENO" >/dev/null 2>&1; then
  DENO="npx -y deno@2.9.6"
fi

OUT_DIR=${OUT_DIR:-dist}
VERSION=$($DENO eval --quiet 'console.log(JSON.parse(Deno.readTextFileSync("deno.json")).version)')
HOST=$($DENO eval --quiet 'console.log(Deno.build.target)')

# verify_binary FILE: runs FILE and succeeds only when it is this version of
# Pilot: `--version` prints "pilot VERSION (" and `help --json` an ok catalog
# of that version that lists `daemon start`. Only stdout counts.
verify_binary() {
  local bin=$1 line catalog
  if ! line=$("$bin" --version 2>/dev/null </dev/null); then
    echo "compile.sh: $bin is not Pilot: \`$bin --version\` failed" >&2
    return 1
  fi
  if [[ "$line" != "pilot $VERSION ("* ]]; then
    echo "compile.sh: $bin is not Pilot $VERSION: \`--version\` printed \"${line%%$'\n'*}\"" >&2
    echo "compile.sh: (a DENORT_BIN naming a plain deno, not denort, builds a file that is only Deno)" >&2
    return 1
  fi
  if ! catalog=$("$bin" help --json 2>/dev/null </dev/null); then
    echo "compile.sh: $bin is not Pilot: \`$bin help --json\` failed" >&2
    return 1
  fi
  if ! printf '%s' "$catalog" | $DENO eval --quiet '
      const c = JSON.parse(await new Response(Deno.stdin.readable).text());
      const ok = c.status === "ok" && c.data?.version === Deno.args[0] &&
        c.data?.commands?.some((x) => x.name === "daemon start");
      Deno.exit(ok ? 0 : 1);' "$VERSION" >/dev/null 2>&1; then
    echo "compile.sh: $bin is not Pilot $VERSION: \`help --json\` printed no catalog of it: ${catalog:0:120}" >&2
    return 1
  fi
}

if [ "${1:-}" = "--verify" ]; then
  [ $# -eq 2 ] || { echo "usage: bash compile.sh --verify FILE" >&2; exit 2; }
  verify_binary "$2"
  echo "compile.sh: $2 runs: $("$2" --version)" >&2
  exit 0
fi

ALL_TARGETS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin)
if [ $# -gt 0 ]; then
  TARGETS=("$@")
elif [ -n "${DENORT_BIN:-}" ]; then
  # A local runtime only fits the machine it was built for.
  TARGETS=("$HOST")
else
  TARGETS=("${ALL_TARGETS[@]}")
fi

if [ -n "${DENORT_BIN:-}" ] && [ ! -x "$DENORT_BIN" ]; then
  echo "compile.sh: DENORT_BIN=$DENORT_BIN is not an executable file" >&2
  exit 1
fi

# What the program needs at run time, baked into the binary: UDP and the
# loopback control API (net, with the unstable datagram API), its home
# (read/write), PILOT_HOME/HOME (env), `daemon start` re-running itself (run), the C
# library's setsockopt for larger UDP buffers (ffi; src/daemon/socket_buffers.ts);
# and its V8 flags, RUNTIME_V8_FLAGS in src/constants.ts (a capped young generation, gc exposed).
V8_FLAGS=--max-semi-space-size=8,--expose-gc
FLAGS=(--unstable-net --allow-net --allow-read --allow-write --allow-env --allow-run --allow-ffi --no-prompt
  "--v8-flags=$V8_FLAGS")

mkdir -p "$OUT_DIR"
status=0
for target in "${TARGETS[@]}"; do
  out="$OUT_DIR/pilot-${target}"
  echo "compile.sh: building $out" >&2
  if ! $DENO compile "${FLAGS[@]}" --target "$target" --output "$out" main.ts 2>"$OUT_DIR/compile.log"; then
    if grep -qiE 'denort|download|fetch|network|dns|connect' "$OUT_DIR/compile.log"; then
      echo "compile.sh: cannot get the Deno runtime (denort) for $target: this machine cannot download it." >&2
      echo "compile.sh: set DENORT_BIN to a local denort for the host target, or build on a machine that can download the Deno runtime." >&2
    else
      cat "$OUT_DIR/compile.log" >&2
    fi
    status=1
    continue
  fi
  if [ "$target" != "$HOST" ]; then
    echo "compile.sh: built $out, not run (cross target: this machine is $HOST)" >&2
  elif verify_binary "$out"; then
    echo "compile.sh: built $out and ran it: $("$out" --version)" >&2
  else
    # What is left is not Pilot; nothing may ship it by mistake.
    rm -f "$out"
    echo "compile.sh: removed $out" >&2
    status=1
  fi
done
exit $status
