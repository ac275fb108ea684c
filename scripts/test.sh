#!/usr/bin/env bash
# The whole test suite: strict build, architecture lint, Swift tests. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build (warnings are errors, explicit import check)"
swift build --build-tests --explicit-target-dependency-import-check error

echo "== architecture lint"
bad=$(grep -rlE '^\s*(@_implementationOnly |internal |public |package )?import (CSQLite|COpenSSL)\b' Sources | grep -v '^Sources/VaultCore/' || true)
[ -z "$bad" ] || { echo "C modules imported outside VaultCore: $bad"; exit 1; }
bad=$(grep -rlE '^\s*(internal |public |package )?import (VaultCore|VaultAPI)\b' Sources/HTTPServer || true)
[ -z "$bad" ] || { echo "HTTPServer imports the domain: $bad"; exit 1; }

echo "== swift test"
swift test
