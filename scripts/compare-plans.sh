#!/bin/bash
# Compares the offline plans of REV (default HEAD) and the working tree, for the shipped stacks and
# a few variants: same URNs (a new name, type or parent replaces a resource on a real stack), the same
# inputs and resource options, the same outputs. Run it before committing a refactor.
# Usage: scripts/compare-plans.sh [REV]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
here=$PWD
work=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$work/rev" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git worktree add --detach --quiet "$work/rev" "$rev"
ln -s "$here/node_modules" "$work/rev/node_modules"

# name|stack|--set arguments: every certificate mode, both engines, both architectures, Datadog on/off,
# every database mode (galera with its arbitrator, rds with the VPC endpoints).
variants=(
  "dev|dev|"
  "prod|prod|"
  "dev-mysql-arm64|dev|--set dbEngine=mysql --set appInstanceType=m7g.large --set lbInstanceType=t4g.small"
  "prod-acm|prod|--set certificate=acm"
  "prod-self-signed-pinned|prod|--set certificate=self-signed --set datadog=false --set protectData=false --set appAmi=ami-0123456789abcdef0"
  "lab-like|dev|--set certificate=letsencrypt --set acmeEmail=ops@example.com --set acmeDirectory=https://acme.lab.test/dir --set protectData=false"
  "dev-galera|dev|--set database=galera"
  "prod-rds-endpoints|prod|--set database=rds --set vpcEndpoints=true"
)
for tree in rev now; do
  dir=$([ "$tree" = rev ] && echo "$work/rev" || echo "$here")
  mkdir -p "$work/$tree"
  for v in "${variants[@]}"; do
    IFS='|' read -r name stack sets <<<"$v"
    # shellcheck disable=SC2086 # the --set arguments are words
    # Each tree's own `npm run plan`: how it loads the program is part of what is compared.
    if ! (cd "$dir" && npm run -s plan -- --stack "$stack" --json $sets) >"$work/$tree/$name.json" 2>"$work/$tree/$name.err"; then
      # REV may not know a variant's config yet (a key added since): reported, not compared.
      [ "$tree" = rev ] || { cat "$work/$tree/$name.err" >&2; exit 1; }
      rm "$work/$tree/$name.json"
    fi
  done
done

node - "$work" "${variants[@]%%|*}" <<'EOF'
const fs = require("fs");
const [work, ...names] = process.argv.slice(2);
let differ = 0;
for (const name of names) {
  if (!fs.existsSync(`${work}/rev/${name}.json`)) {
    const why = fs.readFileSync(`${work}/rev/${name}.err`, "utf8").trim().split("\n").slice(-1)[0];
    console.log(`${name}: not plannable at the base revision (${why}): not compared`);
    continue;
  }
  const load = (tree) => JSON.parse(fs.readFileSync(`${work}/${tree}/${name}.json`, "utf8"));
  const [before, after] = [load("rev"), load("now")];
  const index = (plan) =>
    new Map(plan.resources.map((r) => [r.urn, JSON.stringify([r.inputs, r.options])]));
  const [b, a] = [index(before), index(after)];
  const gone = [...b.keys()].filter((u) => !a.has(u));
  const added = [...a.keys()].filter((u) => !b.has(u));
  const changed = [...a.keys()].filter((u) => b.has(u) && b.get(u) !== a.get(u));
  const outputs = JSON.stringify(before.outputs) !== JSON.stringify(after.outputs);
  if (!gone.length && !added.length && !changed.length && !outputs) {
    console.log(`${name}: same ${a.size} URNs, inputs, options and outputs`);
    continue;
  }
  differ++;
  console.log(`${name}: DIFFERENT`);
  for (const u of gone) console.log(`  - ${u}`);
  for (const u of added) console.log(`  + ${u}`);
  for (const u of changed) console.log(`  ~ ${u} (inputs or options)`);
  if (outputs) console.log("  ~ stack outputs");
}
process.exit(differ ? 1 : 0);
EOF
