#!/usr/bin/env bash
# `make test`'s runner: each argument is a stage, run after the one before it passed.
# A stage is make targets run in turn ("lint unit"), or branches run at once, joined by "&"
# ("cluster & kit integration-platform": `cluster` runs while `kit`, then `integration-platform`,
# run). Each branch's output goes to a log printed whole when the branch ends, so that outputs never
# interleave; a line says when each step ends. The first branch is the long one: the others run at a
# lower CPU priority, so that they take the machine's spare time rather than slow it down.
# At the end: every step's time, and every stage's; when a step failed, the tests that failed with
# their messages (tests/conftest.py writes them), where a CI that keeps the output's tail shows them.
set -uo pipefail

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
export SHOPSTREAM_FAILURES="$logs/failures"
exec 3>&1 # the progress lines, also from a branch whose output goes to its log

# Runs make targets in turn, stopping at the first that fails; appends "target seconds rc".
branch() {
  local target start rc
  for target in "$@"; do
    start=$(date +%s)
    make --no-print-directory "$target"
    rc=$?
    echo "$target $(($(date +%s) - start)) $rc" >>"$logs/times"
    echo "make test: $target $([ "$rc" -eq 0 ] && echo passed || echo FAILED) after $(($(date +%s) - start)) s" >&3
    [ "$rc" -eq 0 ] || return "$rc"
  done
}

status=0
stages=""
for stage in "$@"; do
  start=$(date +%s)
  IFS='&' read -ra branches <<<"$stage"
  if [ "${#branches[@]}" -eq 1 ]; then
    # shellcheck disable=SC2086 # a stage is a list of targets
    branch $stage 2>&1 | tee -a "$logs/main.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  else
    declare -A names=()
    for i in "${!branches[@]}"; do
      # shellcheck disable=SC2086
      if [ "$i" -eq 0 ]; then
        branch ${branches[$i]} >"$logs/$i.log" 2>&1 &
      else
        (renice -n 10 -p "$BASHPID" >/dev/null && branch ${branches[$i]}) >"$logs/$i.log" 2>&1 &
      fi
      names[$!]=$i
    done
    for _ in "${!branches[@]}"; do
      wait -n -p pid "${!names[@]}" || status=1
      i=${names[$pid]}
      read -ra targets <<<"${branches[$i]}"
      echo "===== make test: the output of: ${targets[*]} ====="
      cat "$logs/$i.log"
      unset "names[$pid]"
    done
    unset names
  fi
  stages="$stages [${stage}] $(($(date +%s) - start)) s;"
  [ "$status" -eq 0 ] || break
done

steps=$(awk '{ printf " %s %s s%s;", $1, $2, ($3 == 0 ? "" : " (failed)") }' "$logs/times")
if [ "$status" -eq 0 ]; then
  echo "make test: every step passed;$steps"
else
  if [ -s "$SHOPSTREAM_FAILURES" ]; then
    failed=$(fold -w 160 "$SHOPSTREAM_FAILURES")
  else # no test wrote it: pytest's short summary lines, which Molecule's report folds before the name
    failed=$(sed 's/\x1b\[[0-9;]*m//g' "$logs"/*.log 2>/dev/null |
      grep -a -A2 -E '(^|")(FAILED|ERROR)( tests/| *$)' | head -40)
  fi
  [ -z "$failed" ] || printf 'make test: the tests that failed:\n%s\n' "$failed"
  echo "make test: a step failed;$steps"
fi
echo "make test: stages:$stages"
exit "$status"
