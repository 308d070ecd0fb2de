#!/usr/bin/env bash
# make demo: the lab site (examples/lab) end to end, in network namespaces.
#
# Two gateways gw1 and gw2 each run `gitgw agent` following a bare Git
# repository; a client reaches the VIP 203.0.113.100:80, balanced over two
# backends. The demo shows the plan, the first apply, traffic, a failover
# when the master's agent is killed, a push and its convergence, a change
# made by hand and its drift commit, and the fleet view. Everything it
# creates lives in namespaces and a temporary directory, removed on exit.
# It only uses 203.0.113.0/24 and 198.51.100.0/24 inside its namespaces.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${GITGW:-$here/bin/gitgw}
[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (network namespaces)" >&2; exit 1; }
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 1; }
for t in ip git curl python3; do command -v $t >/dev/null || { echo "demo needs $t" >&2; exit 1; }; done

id=$$
sw=gwdemo-sw-$id gw1=gwdemo-gw1-$id gw2=gwdemo-gw2-$id cl=gwdemo-cl-$id be=gwdemo-be-$id
tmp=$(mktemp -d /tmp/gitgw-demo.XXXXXX)
pids=()

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$tmp"/*.log "$KEEP_LOGS"/ 2>/dev/null; git -C "$tmp/site.git" log --format="%h %ci %s" gitgw/status/gw1 > "$KEEP_LOGS/status-gw1.txt" 2>/dev/null; fi
  for n in $gw1 $gw2 $cl $be $sw; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$tmp"
  echo
  echo "cleaned up: namespaces, processes and $tmp removed"
}
trap cleanup EXIT INT TERM

ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
step() { local e=$(( $(ms) - t0 )); printf '\n\033[1m[%3d.%01ds] %s\033[0m\n' $((e/1000)) $(((e%1000)/100)) "$*"; }
say() { printf '        %s\n' "$*"; }
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local start; start=$(ms)
  while ! "$@" >/dev/null 2>&1; do
    if (( $(ms) - start > limit * 1000 )); then say "timed out waiting for $what"; return 1; fi
    sleep 0.05
  done
  local e=$(( $(ms) - start ))
  say "$what after $((e/1000)).$(printf '%03d' $((e%1000))) s"
}

step "1. A lab in network namespaces: gw1, gw2 and a client on 203.0.113.0/24, backends on 198.51.100.0/24"
for n in $sw $gw1 $gw2 $cl $be; do ip netns add "$n"; in_ns "$n" ip link set lo up; done
in_ns $sw ip link add br0 type bridge forward_delay 0
in_ns $sw ip link add br1 type bridge forward_delay 0
in_ns $sw ip link set br0 up; in_ns $sw ip link set br1 up
port=0
attach() { # attach NS IFNAME BRIDGE ADDR...
  local n=$1 ifn=$2 br=$3; shift 3; port=$((port+1))
  in_ns $sw ip link add p$port type veth peer name "$ifn" netns "$n"
  in_ns $sw ip link set p$port master "$br"; in_ns $sw ip link set p$port up
  for a in "$@"; do in_ns "$n" ip addr add "$a" dev "$ifn"; done
  in_ns "$n" ip link set "$ifn" up
}
attach $gw1 eth0 br0 203.0.113.11/24; attach $gw1 eth1 br1 198.51.100.1/24
gw1port=p1
attach $gw2 eth0 br0 203.0.113.12/24; attach $gw2 eth1 br1 198.51.100.2/24
attach $cl eth0 br0 203.0.113.50/24
attach $be eth0 br1 198.51.100.11/24 198.51.100.12/24
for s in 11 12; do
  mkdir -p "$tmp/www$s"; echo "hello from backend 198.51.100.$s" > "$tmp/www$s/index.html"
  # `ip netns exec` execs the program: $! is the server's own PID.
  ip netns exec $be python3 -m http.server 8080 --bind 198.51.100.$s --directory "$tmp/www$s" >/dev/null 2>&1 &
  pids+=($!)
done
say "gw1 eth0 203.0.113.11, gw2 eth0 203.0.113.12, client 203.0.113.50, backends 198.51.100.11/.12:8080"

step "2. The site in a Git repository (examples/lab)"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=operator GIT_AUTHOR_EMAIL=op@example.com GIT_COMMITTER_NAME=operator GIT_COMMITTER_EMAIL=op@example.com
git init -q --bare -b main "$tmp/site.git"
git clone -q "$tmp/site.git" "$tmp/work" 2>/dev/null
cp -r "$here/examples/lab/." "$tmp/work/"
# The demo has no systemd in its namespaces: the app@ units stay pending.
git -C "$tmp/work" add -A && git -C "$tmp/work" commit -qm "lab site" && git -C "$tmp/work" push -q origin main
say "$(git -C "$tmp/work" log --oneline -1)"
"$bin" validate --site "$tmp/work" && say "gitgw validate: the site is valid"

step "3. gitgw plan for gw1 (a dry run inside gw1)"
in_ns $gw1 "$bin" plan --repo "$tmp/site.git" --node gw1 --no-color --unit-dir "$tmp/units" --systemd-socket "$tmp/none" 2>/dev/null | sed 's/^/        /'

step "4. Start the agents (gw1 and gw2, each following the repository)"
start_agent() { # start_agent NS NODE
  mkdir -p "$tmp/state-$2"
  ip netns exec "$1" "$bin" agent --repo "$tmp/site.git" --node "$2" --state-dir "$tmp/state-$2" \
    --interval 2s --resync 3s --unit-dir "$tmp/units" --systemd-socket "$tmp/none" \
    --socket "$tmp/$2.sock" >"$tmp/$2.log" 2>&1 &
  echo $!
}
a1=$(start_agent $gw1 gw1); pids+=($a1)
a2=$(start_agent $gw2 gw2); pids+=($a2)
has_vip() { in_ns "$1" ip -o addr show dev eth0 | grep -q 203.0.113.100; }
wait_for 20 "gw1 holds the VIP 203.0.113.100 (priority 150)" has_vip $gw1
grep -o '"summary":"[^"]*"' "$tmp/gw1.log" | head -1 | sed 's/^/        gw1 first pass: /'

step "5. Traffic from the client to http://203.0.113.100/ (roundrobin over two backends)"
web() { in_ns $cl curl -s --max-time 2 http://203.0.113.100/; }
wait_for 20 "the service answers on the VIP" web
for i in 1 2 3 4; do say "$(web)"; done

step "6. Failover: the agent on gw1 is killed (SIGKILL); its guardian hands over at once (priority 0, VIP removed)"
kill -KILL "$a1"
wait_for 10 "gw2 holds the VIP" has_vip $gw2
wait_for 10 "the client reaches the service again" web
say "$(web)"
# As the unit's ExecStopPost= would: after the guardian, nothing is left to release.
in_ns $gw1 "$bin" vrrp release --state-dir "$tmp/state-gw1" 2>/dev/null || true

step "7. gw1's agent restarts; preempt gives the VIP back to the higher priority"
a1=$(start_agent $gw1 gw1); pids+=($a1)
wait_for 20 "gw1 holds the VIP again" has_vip $gw1

step "8. A push: drain backend s2 (weight 0 keeps its connections, sends no new ones)"
say "pair-aware rollout: the backup (gw2) applies first; the master (gw1) waits for gw2's status branch"
sed -i 's|s2: address: "198.51.100.12:8080"|s2: {address: "198.51.100.12:8080", drain: true}|' "$tmp/work/site.cue"
git -C "$tmp/work" commit -qam "web: drain s2" && git -C "$tmp/work" push -q origin main
commit=$(git -C "$tmp/work" rev-parse HEAD)
applied() { grep -q "\"commit\":\"$commit\".*\"outcome\":\"applied\"" "$tmp/$1.log"; }
wait_for 30 "gw2 (backup) applied ${commit:0:7}" applied gw2
wait_for 90 "gw1 (master) applied ${commit:0:7}" applied gw1
for i in 1 2 3; do say "$(web)"; done

reported() { git -C "$tmp/site.git" log -1 --format=%B gitgw/status/gw1 2>/dev/null | grep -q "Gitgw-Applied: $commit"; }
wait_for 30 "gw1's status branch reports ${commit:0:7} applied (bursts within 5 s make one commit)" reported

step "9. A change by hand on gw1 (net.ipv4.ip_forward=0): drift, put back on the next resync"
in_ns $gw1 sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'
fwd_back() { [ "$(in_ns $gw1 cat /proc/sys/net/ipv4/ip_forward)" = 1 ]; }
wait_for 20 "ip_forward is 1 again" fwd_back
drift_commit() { git -C "$tmp/site.git" log --format=%s gitgw/status/gw1 2>/dev/null | grep -q '^drift(gw1)'; }
if wait_for 20 "a drift commit on gitgw/status/gw1" drift_commit; then
  git -C "$tmp/site.git" log --format='%h %s' -5 gitgw/status/gw1 | sed 's/^/        /'
fi

step "10. The fleet, read from the status branches"
"$bin" fleet --repo "$tmp/site.git" 2>/dev/null | sed 's/^/        /' || say "(fleet view unavailable)"

step "Done."
