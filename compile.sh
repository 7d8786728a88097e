#!/usr/bin/env bash
# Builds single-file `pilot` binaries with `deno compile` into dist/.
#
#   bash compile.sh                 # all four targets (needs to download each runtime)
#   bash compile.sh x86_64-unknown-linux-gnu
#   DENORT_BIN=/path/to/denort bash compile.sh   # use a local runtime (host target only)
#
# `deno compile` embeds a runtime ("denort") per target, which it downloads
# unless DENORT_BIN names one. Where it can be neither downloaded nor found,
# this script stops with a clear message instead of producing anything.
set -euo pipefail
cd "$(dirname "$0")"

DENO=${DENO:-deno}
if ! command -v "$DENO" >/dev/null 2>&1; then
  DENO="npx -y deno@2.9.6"
fi

ALL_TARGETS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin)
if [ $# -gt 0 ]; then
  TARGETS=("$@")
elif [ -n "${DENORT_BIN:-}" ]; then
  # A local runtime only fits the machine it was built for.
  TARGETS=("$($DENO eval --quiet 'console.log(Deno.build.target)')")
else
  TARGETS=("${ALL_TARGETS[@]}")
fi

if [ -n "${DENORT_BIN:-}" ] && [ ! -x "$DENORT_BIN" ]; then
  echo "compile.sh: DENORT_BIN=$DENORT_BIN is not an executable file" >&2
  exit 1
fi

# What the program needs at run time, baked into the binary: UDP and the
# loopback control API (net, with the unstable datagram API), its home
# (read/write), PILOT_HOME/HOME (env), and `daemon start` re-running itself (run).
FLAGS=(--unstable-net --allow-net --allow-read --allow-write --allow-env --allow-run --no-prompt)

mkdir -p dist
status=0
for target in "${TARGETS[@]}"; do
  out="dist/pilot-${target}"
  echo "compile.sh: building $out" >&2
  if ! $DENO compile "${FLAGS[@]}" --target "$target" --output "$out" main.ts 2>dist/compile.log; then
    if grep -qiE 'denort|download|fetch|network|dns|connect' dist/compile.log; then
      echo "compile.sh: cannot get the Deno runtime (denort) for $target: this machine cannot download it." >&2
      echo "compile.sh: set DENORT_BIN to a local denort for the host target, or build on a machine that can download the Deno runtime." >&2
    else
      cat dist/compile.log >&2
    fi
    status=1
    continue
  fi
  echo "compile.sh: built $out" >&2
done
exit $status
