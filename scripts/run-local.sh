#!/usr/bin/env bash
# run-local.sh: the local demo behind `make run`.
#
# Starts a local S3 server (versitygw, 127.0.0.1:7070, data in ./data/s3),
# then aof-gateway with an embedded JetStream nats-server (127.0.0.1:4222,
# data in ./data/demo) using examples/aof2-demo/config/local.toml, waits for
# http://127.0.0.1:9464/readyz, runs bin/aof2-demo, prints how to use
# bin/aof2-admin against the running gateway, and keeps both servers running
# until Ctrl-C. Server logs go to ./data/logs/.
#
# Expects `make tools build` to have run (make run does that first).
# Environment: DEMO_RECORDS (default 20000), DEMO_STREAM (default demo),
# RUN_LOCAL_NO_WAIT=1 to stop right after the demo instead of waiting for
# Ctrl-C (scripts, CI).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN="$ROOT/bin"
CONFIG="$ROOT/examples/aof2-demo/config/local.toml"
DATA="$ROOT/data"
LOGS="$DATA/logs"
RECORDS="${DEMO_RECORDS:-20000}"
STREAM="${DEMO_STREAM:-demo}"

S3_ADDR=127.0.0.1:7070
NATS_ADDR=127.0.0.1:4222
METRICS_ADDR=127.0.0.1:9464
# Throwaway credentials of the local S3 server; they match local.toml.
S3_ACCESS=aofdemo
S3_SECRET=aofdemo-secret

say() { printf '==> %s\n' "$*"; }
die() { printf 'run-local: %s\n' "$*" >&2; exit 1; }

for b in versitygw aof-gateway aof2-demo aof2-admin; do
	[[ -x "$BIN/$b" ]] || die "$BIN/$b is missing: run \`make run\` (it runs \`make tools build\` first)"
done
command -v curl >/dev/null || die "curl is needed to wait for the gateway's /readyz"

# port_in_use HOST:PORT succeeds when something accepts connections there.
port_in_use() {
	local host=${1%:*} port=${1##*:}
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

for entry in "$S3_ADDR|S3 (versitygw)" "$NATS_ADDR|NATS" "$METRICS_ADDR|gateway metrics/readyz"; do
	hp=${entry%%|*} what=${entry#*|}
	if port_in_use "$hp"; then
		die "port $hp ($what) is already in use: stop whatever listens there (a previous \`make run\`? see: ss -ltnp | grep ${hp##*:}) and try again"
	fi
done

mkdir -p "$DATA/s3" "$LOGS"

PIDS=()
cleanup() {
	local rc=$?
	trap - INT TERM EXIT
	if ((${#PIDS[@]})); then
		say "stopping the gateway and the S3 server"
		# The gateway first (it commits its manifest), then S3.
		for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
			kill -TERM "${PIDS[i]}" 2>/dev/null || true
			for _ in $(seq 1 150); do
				kill -0 "${PIDS[i]}" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "${PIDS[i]}" 2>/dev/null; then
				say "pid ${PIDS[i]} did not stop within 15s; killing it"
				kill -KILL "${PIDS[i]}" 2>/dev/null || true
			fi
			wait "${PIDS[i]}" 2>/dev/null || true
		done
		say "stopped; data kept in $DATA (rm -rf ./data for a fresh start)"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting versitygw on $S3_ADDR (data in data/s3, log in data/logs/versitygw.log)"
"$BIN/versitygw" --port "$S3_ADDR" --access "$S3_ACCESS" --secret "$S3_SECRET" posix "$DATA/s3" \
	>>"$LOGS/versitygw.log" 2>&1 &
PIDS+=($!)

for i in $(seq 1 100); do
	port_in_use "$S3_ADDR" && break
	kill -0 "${PIDS[0]}" 2>/dev/null || die "versitygw exited during start; see $LOGS/versitygw.log:
$(tail -n 20 "$LOGS/versitygw.log")"
	sleep 0.1
	((i == 100)) && die "versitygw did not listen on $S3_ADDR within 10s; see $LOGS/versitygw.log"
done

say "starting aof-gateway --dev (embedded NATS on $NATS_ADDR, data in data/demo, log in data/logs/gateway.log)"
"$BIN/aof-gateway" --dev --config "$CONFIG" >>"$LOGS/gateway.log" 2>&1 &
PIDS+=($!)

for i in $(seq 1 300); do
	curl -fsS "http://$METRICS_ADDR/readyz" >/dev/null 2>&1 && break
	kill -0 "${PIDS[1]}" 2>/dev/null || die "aof-gateway exited during start; see $LOGS/gateway.log:
$(tail -n 20 "$LOGS/gateway.log")"
	sleep 0.1
	((i == 300)) && die "aof-gateway not ready on http://$METRICS_ADDR/readyz within 30s; see $LOGS/gateway.log"
done
say "gateway ready"

demo_rc=0
"$BIN/aof2-demo" --records "$RECORDS" --stream "$STREAM" --nats-url "nats://$NATS_ADDR" || demo_rc=$?
if ((demo_rc != 0)); then
	say "aof2-demo failed (exit $demo_rc); gateway log: $LOGS/gateway.log"
fi

cat <<EOF

The gateway is still running. In another terminal, try:

  bin/aof2-admin dump                                # residency per tier, then a JSON footer
  bin/aof2-admin segments list --stream $STREAM
  bin/aof2-admin read --stream $STREAM --from 0 --count 5
  bin/aof2-admin tail --stream $STREAM                 # follow new records; Ctrl-C stops it
  bin/aof2-admin manifest inspect --stream $STREAM --recent 10
  bin/aof2-demo --records 1000 --stream $STREAM        # run the demo again

(aof2-admin talks to nats://$NATS_ADDR by default; pass --nats-url to change it.)
Metrics: http://$METRICS_ADDR/metrics   Logs: data/logs/

EOF

if [[ "${RUN_LOCAL_NO_WAIT:-}" == 1 ]]; then
	exit "$demo_rc"
fi
say "press Ctrl-C to stop the gateway and the S3 server"
# wait returns when a server exits (or a signal arrives); say which.
while :; do
	for p in "${PIDS[@]}"; do
		if ! kill -0 "$p" 2>/dev/null; then
			wait "$p" && rc=0 || rc=$?
			die "a server (pid $p) exited with status $rc; see $LOGS/"
		fi
	done
	sleep 1 &
	wait $! || true
done
