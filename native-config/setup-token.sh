#!/usr/bin/env bash
# Provisions the project-local SoftHSM2 token (idempotent; a no-op taking well under a second when done).
#
#   bash native-config/setup-token.sh            # install softhsm2 if missing, init token "envelope-kms"
#
# Environment (all optional):
#   SOFTHSM2_CONF      config to use (default: <project>/softhsm2.conf; its tokendir may be relative to <project>)
#   EKMS_TOKEN_LABEL   token label (default: envelope-kms)
#   EKMS_PIN_FILE      where the generated user PIN is kept, mode 0600 (default: <project>/.softhsm/user-pin)
#
# PINs are random per machine, never printed and never committed. The SO PIN is kept beside the user PIN
# (<pin file>.so) so that an operator can re-initialise the token; production HSMs use their own ceremony.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export SOFTHSM2_CONF="${SOFTHSM2_CONF:-$ROOT/softhsm2.conf}"
LABEL="${EKMS_TOKEN_LABEL:-envelope-kms}"
PIN_FILE="${EKMS_PIN_FILE:-$ROOT/.softhsm/user-pin}"

need_pkgs=()
command -v softhsm2-util >/dev/null 2>&1 || need_pkgs+=(softhsm2)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${need_pkgs[*]} (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "setup: SoftHSM2 is not installed and this is not root. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

# The token directory named by the config, resolved against the project root when relative.
tokendir="$(sed -n 's/^[[:space:]]*directories\.tokendir[[:space:]]*=[[:space:]]*//p' "$SOFTHSM2_CONF" | tail -n1)"
[ -n "$tokendir" ] || { echo "setup: $SOFTHSM2_CONF has no directories.tokendir" >&2; exit 1; }
case "$tokendir" in /*) ;; *) tokendir="$ROOT/$tokendir" ;; esac
mkdir -p "$tokendir"
chmod 700 "$tokendir"

if softhsm2-util --show-slots 2>/dev/null | grep -Eq "^[[:space:]]*Label:[[:space:]]+$LABEL[[:space:]]*$"; then
  if [ -s "$PIN_FILE" ]; then
    echo "setup: token '$LABEL' ready ($SOFTHSM2_CONF)"
    exit 0
  fi
  echo "setup: token '$LABEL' exists but its PIN file $PIN_FILE is missing; delete the token or restore the file" >&2
  exit 1
fi

mkdir -p "$(dirname "$PIN_FILE")"
umask 077
user_pin="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
so_pin="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$user_pin" > "$PIN_FILE"
printf '%s' "$so_pin" > "$PIN_FILE.so"
softhsm2-util --init-token --free --label "$LABEL" --so-pin "$so_pin" --pin "$user_pin" >/dev/null
echo "setup: initialised token '$LABEL' in $tokendir (user PIN in $PIN_FILE)"
