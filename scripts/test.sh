#!/usr/bin/env bash
# The tests in one command on a fresh machine: set it up (Debian tools as root, npm dependencies),
# type-check, check formatting, run every unit test. Extra arguments go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
# As root with a user's PATH (the pull-request check): root's tools on it, for every step below.
. ./scripts/root-tools-path.sh

bash scripts/setup.sh
npm run typecheck
npm run format:check
npm test -- "$@"
