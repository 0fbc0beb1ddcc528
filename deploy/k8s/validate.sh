#!/usr/bin/env bash
# Offline check of the manifests with the kubectl client alone (no cluster): every Job is decoded into
# the typed batch/v1 Job structs by 'kubectl set env --local' (a wrong type, e.g. completions: four,
# fails: "cannot unmarshal string into Go struct field JobSpec.spec.completions of type int32"), and
# every key of the file must survive that round trip (a misspelt field is dropped by the decoder, so it
# is reported here). 'kubectl apply/create --dry-run=client' cannot run offline: they ask the API server
# for its resource list first.
set -euo pipefail
cd "$(dirname "$0")"
keys() { grep -v '^\s*#' "$1" | grep -oE '[A-Za-z][A-Za-z0-9.]*:( |$)' | tr -d ': ' | sort -u; }
fail=0
for f in *.yaml; do
  if grep -q '^kind: Job' "$f"; then
    out="$(kubectl set env --local --dry-run=client -f "$f" MD_VALIDATE=1 -o yaml)" || { echo "$f: does not decode as a Job"; fail=1; continue; }
  else
    out="$(kubectl label --local --dry-run=client -f "$f" md-validate=1 -o yaml)" || { echo "$f: does not decode"; fail=1; continue; }
  fi
  missing="$(comm -23 <(keys "$f") <(printf '%s\n' "$out" | grep -oE '[A-Za-z][A-Za-z0-9.]*:( |$)' | tr -d ': ' | sort -u) | tr '\n' ' ')"
  if [ -n "$missing" ]; then echo "$f: fields the decoder dropped (misspelt?): $missing"; fail=1; else echo "$f: ok"; fi
done
exit $fail
