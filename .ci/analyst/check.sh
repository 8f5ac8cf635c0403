#!/usr/bin/env bash
# Runs the README's pandas, R and DuckDB snippets on a results directory and
# checks what they load against the run: the answers of results.json, scores
# recomputed from answers.csv, and answers.parquet read back by DuckDB (an
# independent Parquet reader) holding exactly the rows of answers.csv.
#
#   .ci/analyst/check.sh [RESULTS_DIR]
#
# Without RESULTS_DIR it runs scenario.toml beside this script first. It
# needs /usr/bin/python3 with pandas (Debian: python3-pandas), Rscript
# (r-base-core), node and npm; DuckDB's npm package, which ships the engine,
# is installed into $DUCKDB_DIR (default: a temporary directory) unless it is
# there already.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

dir=${1:-}
if [ -z "$dir" ]; then
  (cd "$root" && go run ./cmd/society run "$here/scenario.toml" --out "$work/results" --quiet >/dev/null)
  dir=$work/results
fi
dir=$(cd "$dir" && pwd)

# snippet TAG FILE: the fenced block after "<!-- check: TAG -->" in README.md.
snippet() {
  awk -v tag="<!-- check: $1 -->" '
    $0 == tag { state = 1; next }
    state == 1 && /^```/ { state = 2; next }
    state == 2 && /^```/ { exit }
    state == 2 { print }' "$root/README.md" >"$work/$2"
  if [ ! -s "$work/$2" ]; then
    echo "README.md has no $1 snippet (<!-- check: $1 --> before a fenced block)" >&2
    exit 1
  fi
}
snippet pandas snippet.py
snippet r snippet.R
snippet duckdb snippet.sql

echo "== pandas snippet"
(cd "$dir" && /usr/bin/python3 "$here/check.py" "$work/snippet.py" "$work/expected_mrat.csv")
echo "== R snippet"
(cd "$dir" && Rscript --vanilla "$here/check.R" "$work/snippet.R" "$work/expected_mrat.csv")

echo "== DuckDB snippet and answers.parquet"
duck=${DUCKDB_DIR:-$work/duckdb}
if [ ! -d "$duck/node_modules/@duckdb/node-api" ]; then
  mkdir -p "$duck"
  npm install --prefix "$duck" --silent --no-audit --no-fund --no-save @duckdb/node-api@1.5.6-r.1 >/dev/null
fi
(cd "$dir" && NODE_PATH="$duck/node_modules" node "$here/check.cjs" "$work/snippet.sql")
echo "analyst tables: README snippets run, scores and answers.parquet agree with answers.csv"
