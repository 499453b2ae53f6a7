#!/usr/bin/env bash
# `make test-slurm`: the smoke DAG through the project's real workflow/profiles/slurm profile on a
# one-node SLURM cluster that this script builds, owns and tears down (cluster.sh).
#
#   1. with accounting (munged, mariadbd, slurmdbd, slurmctld, slurmd): every rule runs as a SLURM
#      job (sacct lists each with the CPUs, memory and time limit its rule asks for), all complete,
#      summary.csv/diffusion.csv equal a local run's, per-job logs are where docs/workflow.md says;
#      requests the node cannot satisfy (a GPU, more CPUs than it has) fail at submission;
#   2. without accounting (no slurmdbd; job states from squeue): the same DAG, with Snakemake killed
#      (kill -9) while MD jobs run and one MD job cancelled, then the README's command rerun: it
#      finishes, the cancelled MD resumes from its checkpoint, no run is simulated twice or lost.
#
# Needs root and apt-get (or the packages installed): otherwise it says SKIPPED and exits 0.
# Runs in a private network namespace when it can (only loopback exists there); the daemons bind
# 127.0.0.1 in any case, and everything lives under a temporary state folder (deleted on
# success, kept and named on failure). Exit status: 0 passed or skipped, 1 failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../../.." && pwd)
VENV=${VENV:-$REPO/.venv}
PY=$VENV/bin/python
SNAKEMAKE=$VENV/bin/snakemake
CONFIG=configs/smoke.yaml
NAME=smoke
# Faster status polling than the plugin's polite 40 s default (speed only; not a profile setting).
POLL=(--slurm-init-seconds-before-status-checks 2)
# shellcheck source=cluster.sh
source "$HERE/cluster.sh"

skip() { echo "test-slurm: SKIPPED: $*"; exit 0; }

if [ -z "${SUPERION_SLURM_INNER:-}" ]; then
    export SUPERION_SLURM_T0=$SECONDS
    [ "$(id -u)" = 0 ] || skip "needs root (it starts munged, mariadbd, slurmdbd, slurmctld and slurmd itself)"
    [ -x "$SNAKEMAKE" ] || { echo "test-slurm: FAILED: no $SNAKEMAKE (run make venv)" >&2; exit 1; }
    export PATH="$PATH:/usr/sbin:/sbin"
    if ! cluster_have_binaries; then
        command -v apt-get >/dev/null || skip "slurm/munge/mariadb are not installed and there is no apt-get"
        APTLOG=$(mktemp -d /tmp/superion-test-slurm-apt.XXXXXX)
        cluster_install "$APTLOG" || skip "apt-get could not install ${CLUSTER_PACKAGES[*]} (see $APTLOG/apt.log)"
        export APT_SECONDS
        rm -rf "$APTLOG"
    fi
    # Everything else in a private network namespace (only loopback) when the kernel allows it.
    if command -v unshare >/dev/null && unshare --net --uts true 2>/dev/null; then
        exec unshare --net --uts env SUPERION_SLURM_INNER=netns bash "$0" "$@"
    fi
    export SUPERION_SLURM_INNER=host
fi

export PATH="$PATH:/usr/sbin:/sbin"
if [ "$SUPERION_SLURM_INNER" = netns ]; then
    ip link set lo up || { echo "test-slurm: FAILED: cannot bring up loopback in the namespace" >&2; exit 1; }
    # slurm resolves names with AF_INET + AI_ADDRCONFIG, which glibc answers only when an IPv4
    # address other than 127.0.0.1 exists: a second loopback address (still 127/8) is enough.
    ip addr add 127.0.0.2/8 dev lo || { echo "test-slurm: FAILED: cannot add 127.0.0.2 to lo in the namespace" >&2; exit 1; }
    # slurm binds to what this host's name resolves to; inside the namespace that must be loopback
    case "$(getent hosts "$(hostname)" | awk '{print $1; exit}')" in
        127.*) ;;
        *) hostname localhost ;;  # this UTS namespace only
    esac
    _log "private network namespace: $(ip -o link | awk -F': ' '{print $2}' | tr '\n' ' ')"
else
    _log "no private network namespace (unshare refused); daemons bind 127.0.0.1 only (checked)"
fi

export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
export SUPERION_MODELS=${SUPERION_MODELS:-$(cd "$REPO/.." && pwd)/shared/models}
[ -d "$SUPERION_MODELS" ] || { echo "test-slurm: FAILED: models folder $SUPERION_MODELS not found" >&2; exit 1; }

TOP=$(mktemp -d /tmp/superion-test-slurm.XXXXXX)
REPORT=$TOP/report.txt
CLUSTER_STATE=""
BG_PIDS=()

# A working directory laid out like the repository root (symlinks), so results stay out of the checkout.
workdir() {
    mkdir -p "$1"
    local n
    for n in Snakefile workflow configs structures; do ln -s "$REPO/$n" "$1/$n"; done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${BG_PIDS[@]}"; do  # our snakemake processes (each leads its own process group)
        kill -KILL -- "-$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -n "$CLUSTER_STATE" ]; then
        cluster_cancel_all
        cluster_down "$CLUSTER_STATE"
    fi
    local left
    left=$(leftover_processes)
    if [ -n "$left" ]; then
        echo "test-slurm: processes left behind: $left" >&2
        rc=1
    fi
    local total=$(( SECONDS - ${SUPERION_SLURM_T0:-0} ))
    if [ "$rc" = 0 ]; then
        cat "$REPORT"
        local apt="packages were installed already"
        [ -n "${APT_SECONDS:-}" ] && apt="apt-get install: ${APT_SECONDS} s"
        echo "test-slurm: PASSED in ${total} s ($apt); no daemon left running"
        rm -rf "$TOP"
    else
        [ -f "$REPORT" ] && cat "$REPORT"
        echo "test-slurm: FAILED after ${total} s; logs and state kept in $TOP" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PIDs (other than this shell and the command asking) of this network namespace, or of the
# processes recorded by cluster.sh when there is no namespace of our own.
leftover_processes() {
    if [ "$SUPERION_SLURM_INNER" = netns ]; then
        "$PY" - "$$" <<'EOF'
import os, sys
me = {os.getpid(), os.getppid(), int(sys.argv[1])}
ns = os.readlink("/proc/self/ns/net")
left = []
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) in me:
        continue
    try:
        if os.readlink(f"/proc/{p}/ns/net") == ns:
            left.append(f"{p}:{open(f'/proc/{p}/comm').read().strip()}")
    except OSError:
        pass
print(" ".join(left))
EOF
    else
        local f
        for f in "$TOP"/*/pids/*.pid; do
            [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && printf '%s ' "$(cat "$f"):$(basename "$f" .pid)"
        done
    fi
}

cluster_cancel_all() {
    _alive slurmctld || return 0
    scancel --user="$(id -un)" 2>/dev/null
    local i
    for i in $(seq 1 60); do
        [ -z "$(squeue -h -t PD,R,CG,S -o %i 2>/dev/null)" ] && return 0
        sleep 0.5
    done
    _log "jobs still listed after scancel: $(squeue -h -o '%i %T' | tr '\n' ' ')"
}

# Processes of SLURM job $1 still alive (found by SLURM_JOB_ID in their environment), as "pid:comm".
job_processes() {
    "$PY" - "$1" <<'EOF'
import os, sys
tag = f"SLURM_JOB_ID={sys.argv[1]}".encode()
out = []
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) == os.getpid():
        continue
    try:
        if tag in open(f"/proc/{p}/environ", "rb").read().split(b"\0"):
            out.append(f"{p}:{open(f'/proc/{p}/comm').read().strip()}")
    except OSError:
        pass
print(" ".join(out))
EOF
}

phase() { _log "== $*"; }
die() { echo "test-slurm: FAILED: $*" >&2; exit 1; }

# The sbatch/srun side of the plugin: its jobstep runs `srun` with every SLURM_* variable removed,
# SLURM_CONF included, so srun inside a job would look for /etc/slurm/slurm.conf. A real cluster has
# that file (or configless slurmd); this throw-away one does not, so the jobs find an srun that
# restores SLURM_CONF first.
BASE_PATH=$PATH
REAL_SRUN=$(command -v srun)
srun_shim() {
    mkdir -p "$1/bin"
    cat >"$1/bin/srun" <<EOF
#!/bin/sh
SLURM_CONF='$SLURM_CONF' exec '$REAL_SRUN' "\$@"
EOF
    chmod +x "$1/bin/srun"
    export PATH="$1/bin:$BASE_PATH"  # this cluster's shim only
}

# The plan of a run: rule, wildcards, threads and resources of every job (a dry run of the same command).
plan() {
    local dir=$1; shift
    # --cores: a dry run would otherwise cap every job's threads at 1
    (cd "$dir" && "$SNAKEMAKE" -n --cores 64 "$@" >"$dir/plan.txt" 2>&1) || { tail -20 "$dir/plan.txt" >&2; die "dry run failed in $dir"; }
}

# ------------------------------------------------------------------------------------------
phase "local reference: the smoke DAG without SLURM (in the background)"
workdir "$TOP/local"
(
    cd "$TOP/local" && exec setsid "$SNAKEMAKE" --cores 2 --configfile "$CONFIG" --rerun-incomplete \
        "results/$NAME/summary.csv" "results/$NAME/diffusion.csv"
) >"$TOP/local/run.log" 2>&1 &
LOCAL_PID=$!
BG_PIDS+=("$LOCAL_PID")

# ------------------------------------------------------------------------------------------
phase "cluster with accounting"
CLUSTER_STATE=$TOP/cluster-accounting
t0=$SECONDS
cluster_up "$CLUSTER_STATE" accounting || die "cluster with accounting did not come up (logs: $CLUSTER_STATE/log)"
T_UP=$((SECONDS - t0))
srun_shim "$CLUSTER_STATE"
srun --quiet hostname >/dev/null || die "srun hostname failed"
sacct -n -X -o JobID >/dev/null || die "sacct does not answer"

W=$TOP/accounting
workdir "$W"
CMD=(--profile workflow/profiles/slurm --configfile "$CONFIG"
     --default-resources "slurm_account=$CLUSTER_ACCOUNT" "slurm_partition=$CLUSTER_PARTITION")
plan "$W" "${CMD[@]}"
phase "smoke DAG through workflow/profiles/slurm (account and partition on the command line)"
t0=$SECONDS
(cd "$W" && "$SNAKEMAKE" "${CMD[@]}" "${POLL[@]}" >"$W/run.log" 2>&1) || { tail -40 "$W/run.log" >&2; die "the SLURM run failed"; }
T_ACCT=$((SECONDS - t0))
sleep 2  # let slurmdbd take the last job's end
sacct -a -X -P -n -S now-1days -o JobIDRaw,JobName%60,Comment%100,AllocCPUS,ReqMem,Timelimit,State,ExitCode,Elapsed \
    >"$W/jobs.psv" || die "sacct failed"
sacct -a -X -S now-1days -o JobID%5,Comment%44,AllocCPUS%5,ReqMem%7,Timelimit%11,Elapsed%9,State%10 >"$W/sacct.txt"

phase "requests the node cannot satisfy fail at submission"
R=$TOP/reject
workdir "$R"
mkdir -p "$R/results/$NAME"
cp -a "$W/results/$NAME/structures" "$R/results/$NAME/"  # relaxed structures: only MD is left to submit
TARGET="results/$NAME/runs/NaBH4/ref/T600K/seed1/complete.json"
t0=$SECONDS
(cd "$R" && timeout 300 "$SNAKEMAKE" "$TARGET" "${CMD[@]}" "${POLL[@]}" --set-resources md:gres=gpu:1 >"$R/gpu.log" 2>&1)
RC_GPU=$?
(cd "$R" && timeout 300 "$SNAKEMAKE" "$TARGET" "${CMD[@]}" "${POLL[@]}" --config "threads=$((NODE_CPUS + 2))" >"$R/cpus.log" 2>&1)
RC_CPUS=$?
T_REJECT=$((SECONDS - t0))
squeue -h -t PD -o '%i %k' >"$R/pending.txt"

wait "$LOCAL_PID" || { tail -40 "$TOP/local/run.log" >&2; die "the local reference run failed"; }
"$PY" "$HERE/check.py" accounting --workdir "$W" --reference "$TOP/local" --name "$NAME" \
    --jobs "$W/jobs.psv" --plan "$W/plan.txt" >>"$REPORT" || die "checks of the accounting run failed (see above)"
"$PY" "$HERE/check.py" rejected --gpu-log "$R/gpu.log" --gpu-rc "$RC_GPU" --cpus-log "$R/cpus.log" \
    --cpus-rc "$RC_CPUS" --pending "$R/pending.txt" --seconds "$T_REJECT" >>"$REPORT" \
    || die "checks of the rejected requests failed (see above)"
{
    echo "sacct of the accounting run (cluster up in ${T_UP} s, smoke DAG in ${T_ACCT} s):"
    cat "$W/sacct.txt"
} >>"$REPORT"

cluster_cancel_all
cluster_down "$CLUSTER_STATE"
CLUSTER_STATE=""

# ------------------------------------------------------------------------------------------
phase "cluster without accounting (no slurmdbd)"
CLUSTER_STATE=$TOP/cluster-noaccounting
cluster_up "$CLUSTER_STATE" none || die "cluster without accounting did not come up (logs: $CLUSTER_STATE/log)"
srun_shim "$CLUSTER_STATE"
sacct -n -X >/dev/null 2>&1 && die "sacct answers on a cluster without accounting?"

N=$TOP/noaccounting
workdir "$N"
# What a user of such a cluster types: the README's command with a partition and no account.
CMD=(--profile workflow/profiles/slurm --configfile "$CONFIG" --default-resources "slurm_partition=$CLUSTER_PARTITION")
plan "$N" "${CMD[@]}"
phase "smoke DAG; kill -9 of snakemake while MD jobs run, one MD job cancelled, then the same command again"
t0=$SECONDS
(cd "$N" && exec setsid "$SNAKEMAKE" "${CMD[@]}" "${POLL[@]}") >"$N/run1.log" 2>&1 &
SNAKE_PID=$!
BG_PIDS+=("$SNAKE_PID")
# wait for an MD job that is RUNNING with its run past the first checkpoint
VICTIM=""
for i in $(seq 1 1200); do
    kill -0 "$SNAKE_PID" 2>/dev/null || { tail -30 "$N/run1.log" >&2; die "snakemake ended before any MD job ran"; }
    while IFS='|' read -r jid comment; do
        # rule_md_wildcards_<system>_<mass>_<T>_<seed>
        IFS=_ read -r _ _ _ sys mass temp seed <<<"$comment"
        run="$N/results/$NAME/runs/$sys/$mass/T${temp}K/seed$seed"
        if [ -f "$run/checkpoint.npz" ] && [ ! -f "$run/complete.json" ]; then VICTIM=$jid; VICTIM_RUN=$run; break; fi
    done < <(squeue -h -t R -o '%i|%k' | grep '|rule_md_')
    [ -n "$VICTIM" ] && break
    sleep 0.25
done
[ -n "$VICTIM" ] || die "no MD job seen running with a checkpoint"
kill -KILL "$SNAKE_PID"  # the Snakemake process only, as kill -9 on a login node
wait "$SNAKE_PID" 2>/dev/null
squeue -h -o '%i|%k|%T' >"$N/after_kill.txt"
scancel "$VICTIM"  # and one MD job dies with it (a lost node): its run must resume, not restart
# This cluster tracks job processes with proctrack/linuxproc (no cgroups in a throw-away VM
# cluster): a job's Snakemake that catches SIGTERM and is re-parented to init escapes slurmstepd's
# SIGKILL after KillWait. On a production cluster proctrack/cgroup kills the whole job. Reap such
# escapees here, as cgroup tracking would, and say so in the report (they never write: their
# superion md child is gone, and the run-directory lock would stop a second writer).
sleep 10  # > KillWait=5
ESCAPED=$(job_processes "$VICTIM")
if [ -n "$ESCAPED" ]; then
    for e in $ESCAPED; do kill -KILL "${e%%:*}" 2>/dev/null; done
    echo "  note cancelled job $VICTIM left $ESCAPED after KillWait (escaped proctrack/linuxproc); killed by the harness" >>"$REPORT"
fi
ls "$N/.snakemake/locks/" >"$N/locks_after_kill.txt" 2>/dev/null
_log "killed snakemake; jobs still queued/running: $(cut -d'|' -f1,3 "$N/after_kill.txt" | tr '\n' ' '); cancelled $VICTIM"
(cd "$N" && timeout 1500 "$SNAKEMAKE" "${CMD[@]}" "${POLL[@]}" >"$N/run2.log" 2>&1) || { tail -40 "$N/run2.log" >&2; die "the rerun after kill -9 failed"; }
T_FAULT=$((SECONDS - t0))
# wait for the jobs the killed snakemake left behind
for i in $(seq 1 600); do
    [ -z "$(squeue -h -t PD,R,CG -o %i)" ] && break
    sleep 0.5
done
squeue --states=all -h -o '%i|%j|%k|%C|%m|%l|%T' >"$N/jobs.psv"
"$PY" "$HERE/check.py" noaccounting --workdir "$N" --reference "$TOP/local" --name "$NAME" \
    --jobs "$N/jobs.psv" --plan "$N/plan.txt" --jobcomp "$CLUSTER_STATE/log/jobcomp.txt" \
    --after-kill "$N/after_kill.txt" --locks-after-kill "$N/locks_after_kill.txt" --cancelled "$VICTIM" \
    --cancelled-run "$VICTIM_RUN" --rerun-log "$N/run2.log" >>"$REPORT" \
    || die "checks of the run without accounting failed (see above)"
echo "run without accounting, killed and rerun: ${T_FAULT} s" >>"$REPORT"
