#!/usr/bin/env bash
# Installs envelope-kms as a user would and runs it from there (issue 12, point 15):
#   npm pack → a fresh app in a temporary folder → npm install <tarball>
#   → npx envelope-kms --version | init | doctor | serve (/health, /ready, SIGTERM exits 0)
#   → the README's library example ("A taste of the API"), taken from the installed README.
# Nothing here reads the repository's own token, PIN file, softhsm2.conf or catalog: the app folder starts empty.
#
#   bash scripts/check-installed.sh            # KEEP=1 keeps the temporary folder for inspection
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ekms-installed.XXXXXX")"
SERVE_PID=""
cleanup() {
  [ -z "$SERVE_PID" ] || kill "$SERVE_PID" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "installed-check: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
say() { printf 'installed-check: %s\n' "$*"; }
fail() {
  printf 'installed-check: FAILED: %s\n' "$*" >&2
  exit 1
}

say "npm pack (prepack builds dist)"
tarball="$(cd "$ROOT" && npm pack --silent --pack-destination "$WORK" | tail -n1)"
[ -f "$WORK/$tarball" ] || fail "npm pack produced no tarball"

APP="$WORK/app"
mkdir -p "$APP"
cd "$APP"
# What the README tells a user to write: an ES module app that approves the two native addons' install scripts.
cat > package.json <<'JSON'
{
  "name": "installed-check-app",
  "private": true,
  "type": "module",
  "allowScripts": { "better-sqlite3": true, "pkcs11js": true }
}
JSON

say "npm install $tarball into a fresh app"
npm install "$WORK/$tarball" --prefer-offline --no-audit --no-fund --loglevel=error
[ -d node_modules/hono ] || fail "the hono peer dependency was not installed"
[ ! -d node_modules/@aws-sdk/client-kms ] || fail "@aws-sdk/client-kms is an optional peer; it should not be installed"

ekms() { npx --no-install envelope-kms "$@"; }

say "envelope-kms --version"
version="$(ekms --version)"
[ "$version" = "$(node -p "require('$ROOT/package.json').version")" ] || fail "--version printed '$version'"

say "envelope-kms init"
ekms init
say "envelope-kms init again (idempotent)"
ekms init

say "envelope-kms doctor"
ekms doctor

say "the README's library example"
# The first ```ts block after "## A taste of the API" in the README the package ships.
node -e '
  const fs = require("fs")
  const readme = fs.readFileSync("node_modules/envelope-kms/README.md", "utf8")
  const at = readme.indexOf("## A taste of the API")
  const m = at < 0 ? null : /```ts\n([\s\S]*?)```/.exec(readme.slice(at))
  if (!m) { console.error("no ts block under ## A taste of the API"); process.exit(1) }
  fs.writeFileSync("readme-example.mjs", m[1])
'
out="$(node readme-example.mjs)"
printf '%s\n' "$out"
printf '%s\n' "$out" | head -n1 | grep -qx 'true 2' || fail "the README example did not print 'true 2' first"
printf '%s\n' "$out" | sed -n 2p | grep -q '^card 4111' || fail "the README example did not open its sealed message"

say "the optional AWS SDK: absent, so the AWS KMS provider says what to install"
node --input-type=module -e '
  import { createAwsKmsProvider } from "envelope-kms/providers/aws-kms"
  try {
    await createAwsKmsProvider({ regions: [{ region: "eu-west-1" }] })
    console.error("created a provider without @aws-sdk/client-kms"); process.exit(1)
  } catch (e) {
    if (e.code !== "PROVIDER_MODULE_LOAD_FAILED" || !e.message.includes("npm install @aws-sdk/client-kms")) {
      console.error("unexpected error:", e.code, e.message); process.exit(1)
    }
  }
'

say "the optional Azure SDK: absent, so the Azure Key Vault provider says what to install"
[ ! -d node_modules/@azure/keyvault-keys ] || fail "@azure/keyvault-keys is an optional peer; it should not be installed"
node --input-type=module -e '
  import { createAzureKvProvider } from "envelope-kms/providers/azure-kv"
  try {
    await createAzureKvProvider({
      vaultUrl: "https://example.vault.azure.net",
      credential: { kind: "static-token", token: "t" },
    })
    console.error("created a provider without @azure/keyvault-keys"); process.exit(1)
  } catch (e) {
    if (e.code !== "PROVIDER_MODULE_LOAD_FAILED" || !e.message.includes("npm install @azure/keyvault-keys")) {
      console.error("unexpected error:", e.code, e.message); process.exit(1)
    }
  }
'

say "envelope-kms serve (port 0), /health, /ready, SIGTERM"
# The bin npx runs, started directly: npx (npm exec) does not pass SIGTERM on to its child.
EKMS_HTTP_PORT=0 node_modules/.bin/envelope-kms serve > serve.out 2> serve.err &
SERVE_PID=$!
url=""
for _ in $(seq 1 150); do
  url="$(sed -n 's/.*"url":"\(http:[^"]*\)".*/\1/p' serve.err | head -n1)"
  [ -n "$url" ] && break
  kill -0 "$SERVE_PID" 2>/dev/null || { cat serve.err >&2; fail "serve exited before listening"; }
  sleep 0.2
done
[ -n "$url" ] || { cat serve.err >&2; fail "serve did not report its URL within 30 s"; }
for path in /health /ready; do
  code="$(node -e 'fetch(process.argv[1]).then((r) => console.log(r.status), () => console.log(0))' "$url$path")"
  [ "$code" = 200 ] || { cat serve.err >&2; fail "GET $path answered $code"; }
done
[ -s data/dev-api-key ] || fail "serve wrote no development API key"
kill -TERM "$SERVE_PID"
rc=0
wait "$SERVE_PID" || rc=$?
SERVE_PID=""
[ "$rc" = 0 ] || { cat serve.err >&2; fail "serve exited $rc after SIGTERM"; }

say "ok: installed from the tarball, init, doctor, the README example and serve all work"
