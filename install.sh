#!/bin/sh
# Installs or upgrades `pilot` from a release: picks the binary for this OS and
# architecture, checks it against the release's SHA256SUMS, and moves it into
# place in one rename, so an old `pilot` is either kept whole or replaced whole.
#
#   curl -fsSL https://raw.githubusercontent.com/pilot-net/pilot/main/install.sh | sh
#
# Environment (all optional):
#   PILOT_VERSION       release to install, e.g. 0.2.0 (default: the latest)
#   PILOT_INSTALL_DIR   folder for the binary (default: ~/.pilot/bin)
#   PILOT_REPO          GitHub owner/name of the releases (default: pilot-net/pilot)
#   PILOT_INSTALL_BASE  URL of the folder holding the binaries and SHA256SUMS, for
#                       mirrors and tests; PILOT_REPO and PILOT_VERSION then do not apply
#   PILOT_GITHUB_URL    GitHub's address (default: https://github.com), for tests
#   PILOT_INSTALL_OS, PILOT_INSTALL_ARCH
#                       stand in for `uname -s` and `uname -m` (tests, odd systems)
#
# It only writes inside the install folder and never raises its own privileges:
# a folder the user cannot write is refused, not escalated.
set -eu

PILOT_REPO_DEFAULT=pilot-net/pilot

fail() {
  echo "install.sh: $*" >&2
  exit 1
}

# The Deno target triple of this machine, as in the release's asset names.
detect_target() {
  os=$(printf '%s' "${PILOT_INSTALL_OS:-$(uname -s)}" | tr '[:upper:]' '[:lower:]')
  arch=$(printf '%s' "${PILOT_INSTALL_ARCH:-$(uname -m)}" | tr '[:upper:]' '[:lower:]')
  case $os in
    linux) os_part=unknown-linux-gnu ;;
    darwin)
      os_part=apple-darwin
      # An x86_64 shell under Rosetta on Apple silicon: take the native binary.
      if [ -z "${PILOT_INSTALL_ARCH:-}" ] && [ "$arch" = x86_64 ] &&
        [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
        arch=arm64
      fi
      ;;
    *) fail "unsupported operating system \"$os\": releases are built for Linux and macOS" ;;
  esac
  case $arch in
    x86_64 | amd64) arch_part=x86_64 ;;
    aarch64 | arm64) arch_part=aarch64 ;;
    *) fail "unsupported architecture \"$arch\": releases are built for x86_64 and aarch64" ;;
  esac
  echo "$arch_part-$os_part"
}

# The URL of the folder that holds the binaries and SHA256SUMS.
release_base() {
  if [ -n "${PILOT_INSTALL_BASE:-}" ]; then
    echo "${PILOT_INSTALL_BASE%/}"
    return
  fi
  repo=${PILOT_REPO:-$PILOT_REPO_DEFAULT}
  case $repo in
    *[!A-Za-z0-9._/-]* | /* | */ | */*/*) fail "PILOT_REPO=\"$repo\" is not a GitHub owner/name" ;;
    */*) ;;
    *) fail "PILOT_REPO=\"$repo\" is not a GitHub owner/name" ;;
  esac
  github=${PILOT_GITHUB_URL:-https://github.com}
  github=${github%/}
  if [ -z "${PILOT_VERSION:-}" ]; then
    echo "$github/$repo/releases/latest/download"
    return
  fi
  version=${PILOT_VERSION#v}
  case $version in
    '' | *[!A-Za-z0-9.+-]*) fail "PILOT_VERSION=\"$PILOT_VERSION\" is not a version like 0.2.0" ;;
  esac
  echo "$github/$repo/releases/download/v$version"
}

# download URL FILE: the body of URL into FILE, or a one-line reason and exit.
download() {
  if command -v curl >/dev/null 2>&1; then
    if ! err=$(curl -fsSL -o "$2" "$1" 2>&1); then
      fail "could not download $1 ($(printf '%s' "$err" | tail -n 1)); nothing was installed"
    fi
  else
    if ! err=$(wget -q --tries=1 -O "$2" "$1" 2>&1); then
      fail "could not download $1 (wget: $(printf '%s' "${err:-failed}" | tail -n 1)); nothing was installed"
    fi
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{ print $1 }'
  else
    shasum -a 256 "$1" | awk '{ print $1 }'
  fi
}

main() {
  # Check every tool before downloading anything.
  if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
    fail "neither curl nor wget is installed; install one and run this again"
  fi
  if ! command -v sha256sum >/dev/null 2>&1 && ! command -v shasum >/dev/null 2>&1; then
    fail "neither sha256sum nor shasum is installed, so the download cannot be checked"
  fi

  target=$(detect_target)
  asset="pilot-$target"
  base=$(release_base)

  if [ -n "${PILOT_INSTALL_DIR:-}" ]; then
    dir=${PILOT_INSTALL_DIR%/}
  elif [ -n "${HOME:-}" ]; then
    dir="$HOME/.pilot/bin"
    # ~/.pilot is also the node's home, which the daemon refuses unless only
    # its owner can enter it.
    if [ ! -e "$HOME/.pilot" ]; then
      mkdir -m 700 "$HOME/.pilot" 2>/dev/null ||
        fail "cannot create $HOME/.pilot; set PILOT_INSTALL_DIR to a folder you own"
    fi
  else
    fail "HOME is not set; set PILOT_INSTALL_DIR to the folder for pilot"
  fi
  if ! mkdir -p "$dir" 2>/dev/null || [ ! -w "$dir" ]; then
    fail "cannot write to $dir; set PILOT_INSTALL_DIR to a folder you own"
  fi

  # Both downloads land beside the target, so the final `mv` is a rename
  # within one file system; the trap removes them however the script ends.
  tmp="$dir/.pilot.download.$$"
  sums="$dir/.pilot.SHA256SUMS.$$"
  trap 'rm -f "$tmp" "$sums"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP

  echo "install.sh: downloading $asset from $base"
  download "$base/SHA256SUMS" "$sums"
  expected=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1; exit }' "$sums")
  case $expected in
    '') fail "SHA256SUMS at $base lists no checksum for $asset; nothing was installed" ;;
    *[!0-9a-fA-F]*) fail "SHA256SUMS at $base has a malformed checksum for $asset; nothing was installed" ;;
  esac
  [ ${#expected} -eq 64 ] ||
    fail "SHA256SUMS at $base has a malformed checksum for $asset; nothing was installed"

  download "$base/$asset" "$tmp"
  actual=$(sha256_of "$tmp")
  expected=$(printf '%s' "$expected" | tr '[:upper:]' '[:lower:]')
  [ "$actual" = "$expected" ] ||
    fail "checksum mismatch for $asset (expected $expected, got $actual); nothing was installed"

  chmod 0755 "$tmp"
  mv -f "$tmp" "$dir/pilot"
  echo "install.sh: installed $dir/pilot"
  # A stand-in or a binary for another machine may not run here; that is
  # worth a word, not a failure.
  if version=$("$dir/pilot" --version 2>/dev/null); then
    echo "install.sh: $(printf '%s' "$version" | head -n 1)"
  fi

  case ":${PATH:-}:" in
    *":$dir:"*) ;;
    *)
      case ${SHELL:-} in
        */zsh) rc=.zshrc ;;
        */bash) rc=.bashrc ;;
        *) rc=.profile ;;
      esac
      echo "install.sh: $dir is not on your PATH; add it with this line (and put it in your ~/$rc):"
      echo "  export PATH=\"$dir:\$PATH\""
      ;;
  esac
}

# Everything runs from here, so a script cut short in `curl | sh` does nothing.
main "$@"
