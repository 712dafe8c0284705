# Shared by the interop scripts: a work directory, background processes stopped by PID on exit,
# test verdicts, and pcscd + a vpcd-attached element. Source it after `set -euo pipefail`.
WORK=$(mktemp -d)
PIDS=()
READER=${KEYWARD_VPCD_READER:-Virtual PCD 00 00}
VPCD_PORT=${KEYWARD_VPCD_PORT:-35963}

cleanup() {
  local rc=$?
  set +e  # a killed child's status must not end the cleanup early
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null && wait "${PIDS[i]}" 2>/dev/null
  done
  [ -n "${KEYWARD_KEEP_WORK:-}" ] && echo "# kept $WORK" || rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

# Starts a background process (command and arguments, output to LOG) and records its PID.
spawn() {
  local log=$1; shift
  "$@" >>"$log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
}

# Stops one recorded background process.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

pass() { echo "ok   - $1"; }
fail() {
  echo "FAIL - $1"
  for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
  exit 1
}
# run DESC CMD...: the command must succeed.
run() { local d=$1; shift; local out; out=$("$@" 2>&1) || { echo "$out"; fail "$d"; }; pass "$d"; }
# expect DESC REGEX CMD...: the command's output must match (its exit status is not trusted:
# some OpenSC tools exit 0 on failure).
expect() {
  local d=$1 re=$2; shift 2; local out; out=$("$@" 2>&1) || true
  grep -qE -- "$re" <<<"$out" || { echo "$out"; fail "$d"; }; pass "$d"
}

# expect_fail DESC REGEX CMD...: the command must fail and its output match.
expect_fail() {
  local d=$1 re=$2; shift 2; local out
  if out=$("$@" 2>&1); then echo "$out"; fail "$d (it succeeded)"; fi
  grep -qE -- "$re" <<<"$out" || { echo "$out"; fail "$d"; }; pass "$d"
}

# test_db NAME DATA-DIR: sets DB (and KEYWARD_DB) to a fresh PostgreSQL database NAME under
# scripts/with-postgres, else to SQLite in DATA-DIR.
test_db() {
  if [ -n "${KEYWARD_TEST_POSTGRES_URL:-}" ]; then
    psql "$KEYWARD_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
    DB=${KEYWARD_TEST_POSTGRES_URL%/*}/$1
    echo "# on PostgreSQL"
  else
    mkdir -p "$2"
    DB=sqlite://$2/keyward.db
  fi
  export KEYWARD_DB=$DB
}

# pcscd: reuse a running one (only one can run per machine), else start our own (stopped on exit).
PCSCD_PID=
start_pcscd() {
  if pgrep -x pcscd >/dev/null; then
    echo "# reusing the running pcscd"
    return
  fi
  # vpcd must bind its fixed port; while a socket of an earlier run still holds it (TIME_WAIT
  # lasts a minute), pcscd comes up without the reader: start it again a little later.
  for attempt in $(seq 12); do
    spawn "$WORK/pcscd.log" pcscd -f
    PCSCD_PID=$LAST_PID
    for _ in $(seq 50); do opensc-tool -l 2>/dev/null | grep -q "$READER" && return 0; sleep 0.1; done
    echo "# pcscd came up without '$READER' (attempt $attempt); restarting it"
    stop "$PCSCD_PID"
    sleep 3
  done
  fail "pcscd does not offer reader '$READER'"
}

# Ready = listed as present and answering (right after attaching, pcscd may still be powering it up).
card_present() {
  opensc-tool -l 2>/dev/null | grep -qE "Yes +$READER" &&
    opensc-tool -r "$READER" -s 00A404000BE82B0601040181C31F0201 2>/dev/null | grep -q "SW1=0x90"
}

# Attaches the element in STATE to vpcd (`keyward se serve --vpcd`) and waits for it.
SERVE_PID=
start_vpcd_element() {
  spawn "$WORK/serve.log" env KEYWARD_LOG=debug "$KEYWARD" se serve --state "$1" --vpcd "127.0.0.1:$VPCD_PORT"
  SERVE_PID=$LAST_PID
  for _ in $(seq 100); do card_present && return 0; sleep 0.1; done
  fail "element did not appear in reader '$READER'"
}
