#!/usr/bin/env bash
# Provisions the project-local SoftHSM2 token and catalog by running `envelope-kms init` (the command an
# installed package offers; src/cli/commands/init.ts), so that this script and `init` cannot disagree.
# For a clone of the repository (npm run setup, npm start, npm test); an installed package runs
# `npx envelope-kms init` in the application's directory instead.
# Idempotent: a no-op when the token and its PIN file are there.
#
#   bash native-config/setup-token.sh            # install softhsm2 if missing (as root), init token "envelope-kms"
#
# Environment (all optional):
#   SOFTHSM2_CONF      config to use (default: <project>/softhsm2.conf; its tokendir is relative to <project>)
#   EKMS_TOKEN_LABEL   token label (default: envelope-kms)
#   EKMS_PIN_FILE      where the generated user PIN is kept, mode 0600 (default: <project>/.softhsm/user-pin)
#
# PINs are random per machine, never printed, never on a command line and never committed. The SO PIN is kept
# beside the user PIN (<pin file>.so) so that an operator can re-initialise the token; production HSMs use
# their own ceremony. init refuses (exit 1) a token whose PIN file is missing, and a PIN file whose token is
# missing, rather than guess.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export SOFTHSM2_CONF="${SOFTHSM2_CONF:-$ROOT/softhsm2.conf}"
args=(init --install-deps)
if [ -n "${EKMS_TOKEN_LABEL:-}" ]; then args+=(--token-label "$EKMS_TOKEN_LABEL"); fi
if [ -n "${EKMS_PIN_FILE:-}" ]; then args+=(--pin-file "$EKMS_PIN_FILE"); fi
# A clone runs the sources (dist/ may be stale or absent: npm test builds after this); a package, dist/.
if [ -f src/cli/main.ts ] && [ -e node_modules/tsx ]; then
  exec node --import tsx src/cli/main.ts "${args[@]}"
fi
exec node dist/cli/main.js "${args[@]}"
