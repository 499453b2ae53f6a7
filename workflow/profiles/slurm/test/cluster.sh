# A throw-away one-node SLURM cluster on this machine, for `make test-slurm` (sourced by run.sh).
#
#   cluster_install                 apt-get install what is missing (slurm-wlm slurmdbd munge mariadb-server)
#   cluster_up STATE [accounting]   munged -> mariadbd -> slurmdbd -> sacctmgr -> slurmctld -> slurmd
#   cluster_up STATE none           munged -> slurmctld -> slurmd (AccountingStorageType=none)
#   cluster_down STATE              stop every daemon cluster_up started (by its recorded PID)
#
# Everything lives under STATE (configs, keys, sockets, databases, spool, logs, PID files): the
# daemons read their configs from there (SLURM_CONF, munged --key-file/--socket, mariadbd
# --no-defaults), listen on 127.0.0.1 only (free ports picked at start) and run in the
# foreground as children of this shell, so their PIDs are known and nothing outlives the test.
# No file outside STATE is written (apt-get aside). Client commands (sinfo, sbatch, sacct) find
# the cluster through the exported SLURM_CONF.

CLUSTER_PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
CLUSTER_NAME=superiontest
CLUSTER_ACCOUNT=superion
CLUSTER_PARTITION=debug

_log() { printf '[test-slurm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# 0 if every binary the cluster needs is installed.
cluster_have_binaries() {
    local b
    for b in munged mungekey mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sbatch sacct sacctmgr squeue sinfo scontrol; do
        command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1 || return 1
    done
}

# Install what is missing. Starting services is left to policy-rc.d (Debian images refuse it);
# without one, apt may start the distribution's own daemons on their default ports/paths, which
# ours do not use.
cluster_install() {
    export PATH="$PATH:/usr/sbin:/sbin"
    if cluster_have_binaries; then
        _log "slurm, munge, mariadb already installed"
        return 0
    fi
    local t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    [ -x /usr/sbin/policy-rc.d ] || _log "note: no /usr/sbin/policy-rc.d; apt may start system services (ours use their own ports and paths)"
    if ! apt-get install -y -q --no-install-recommends "${CLUSTER_PACKAGES[@]}" >"$1/apt.log" 2>&1; then
        _log "apt-get install failed; running apt-get update first"
        apt-get update -q >>"$1/apt.log" 2>&1 || { tail -5 "$1/apt.log" >&2; return 1; }
        apt-get install -y -q --no-install-recommends "${CLUSTER_PACKAGES[@]}" >>"$1/apt.log" 2>&1 \
            || { tail -5 "$1/apt.log" >&2; return 1; }
    fi
    cluster_have_binaries || { _log "installed, but binaries are missing"; return 1; }
    APT_SECONDS=$((SECONDS - t0))
    _log "apt-get install ${CLUSTER_PACKAGES[*]}: ${APT_SECONDS} s"
}

_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Start "$@" in the background as a child of this shell; record its PID as STATE/pids/NAME.pid.
_spawn() {
    local name=$1; shift
    "$@" >"$STATE/log/$name.out" 2>&1 &
    echo $! >"$STATE/pids/$name.pid"
}

_alive() { [ -f "$STATE/pids/$1.pid" ] && kill -0 "$(cat "$STATE/pids/$1.pid")" 2>/dev/null; }

# Wait up to $2 seconds for command "${@:3}" to succeed while daemon $1 stays alive.
_wait_for() {
    local name=$1 timeout=$2; shift 2
    local t0=$SECONDS
    until "$@" >/dev/null 2>&1; do
        if ! _alive "$name"; then
            _log "$name died during start-up; its log:"; tail -20 "$STATE/log/$name"* >&2 2>/dev/null
            return 1
        fi
        if (( SECONDS - t0 > timeout )); then
            _log "$name not ready after ${timeout} s; its log:"; tail -20 "$STATE/log/$name"* >&2 2>/dev/null
            return 1
        fi
        sleep 0.5
    done
}

_write_slurm_conf() {
    local accounting=$1
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc --all)
    # RealMemory from the OS (MiB of MemTotal), as slurmd -C reports it; a node announcing less
    # than it has is fine, more would be drained.
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024}' /proc/meminfo)
    NODE_CPUS=$cpus NODE_MEM_MB=$mem_mb NODE_NAME=$host
    cat >"$SLURM_CONF" <<EOF
# written by workflow/profiles/slurm/test/cluster.sh for one test run; see that file
ClusterName=$CLUSTER_NAME
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SrunPortRange=$SRUN_PORTS
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/pids/slurmctld.file.pid
SlurmdPidFile=$STATE/pids/slurmd.file.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
PlugStackConfig=$STATE/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Requests no node can satisfy are rejected by sbatch instead of pending forever.
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=3600
DefMemPerCPU=1000
KillWait=5
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
# Every finished job is also written here (JobID, name, state, ...): the record of a cluster
# without accounting.
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
EOF
    if [ "$accounting" = accounting ]; then
        cat >>"$SLURM_CONF" <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# the MUNGE socket for talking to slurmdbd (AuthInfo covers slurmctld and slurmd only)
AccountingStoragePass=$STATE/munge/munge.socket
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
EOF
    else
        echo "AccountingStorageType=accounting_storage/none" >>"$SLURM_CONF"
    fi
    cat >>"$SLURM_CONF" <<EOF
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$CLUSTER_PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$STATE/etc/plugstack.conf"
}

_start_munge() {
    mkdir -p "$STATE/munge"
    chmod 700 "$STATE/munge"
    mungekey --create --keyfile="$STATE/munge/munge.key" >/dev/null 2>&1 \
        || dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1 count=1024 status=none
    chmod 600 "$STATE/munge/munge.key"
    _spawn munged munged --foreground --force \
        --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" \
        --seed-file="$STATE/munge/munged.seed"
    _wait_for munged 20 test -S "$STATE/munge/munge.socket"
}

_start_mariadb() {
    mkdir -p "$STATE/db"
    mariadb-install-db --no-defaults --datadir="$STATE/db/data" --user=root \
        --auth-root-authentication-method=socket --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 \
        || { tail -20 "$STATE/log/mariadb-install.log" >&2; return 1; }
    _spawn mariadbd mariadbd --no-defaults --datadir="$STATE/db/data" --user=root \
        --socket="$STATE/db/mysql.sock" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$STATE/db/mariadbd.pid" --log-error="$STATE/log/mariadbd.log" \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --innodb-lock-wait-timeout=900
    _wait_for mariadbd 60 mariadb --no-defaults -S "$STATE/db/mysql.sock" -u root -e "SELECT 1"
    DB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    mariadb --no-defaults -S "$STATE/db/mysql.sock" -u root <<EOF
CREATE DATABASE slurm_acct_db;
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

_start_slurmdbd() {
    local conf="$STATE/etc/slurmdbd.conf"
    cat >"$conf" <<EOF
# written by workflow/profiles/slurm/test/cluster.sh for one test run
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
CommunicationParameters=NoInAddrAny
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/pids/slurmdbd.file.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$conf"
    _spawn slurmdbd slurmdbd -D
    _wait_for slurmdbd 90 sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
    sacctmgr -i add account "$CLUSTER_ACCOUNT" Cluster="$CLUSTER_NAME" Description=test Organization=test >/dev/null
    sacctmgr -i add user "$(id -un)" Account="$CLUSTER_ACCOUNT" DefaultAccount="$CLUSTER_ACCOUNT" Cluster="$CLUSTER_NAME" >/dev/null
}

_node_idle() { sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

# Every listening socket of our daemons must be on the loopback interface.
_check_loopback_only() {
    local pids p bad
    pids=$(cat "$STATE"/pids/*.pid 2>/dev/null | tr '\n' ' ')
    bad=$(ss -H -ltnp 2>/dev/null | while read -r _ _ _ local _ proc; do
        for p in $pids; do
            case "$proc" in *"pid=$p,"*)
                case "$local" in 127.0.0.1:*|'[::1]:'*) ;; *) echo "$local $proc" ;; esac ;;
            esac
        done
    done)
    if [ -n "$bad" ]; then
        _log "a daemon listens beyond the loopback interface: $bad"
        return 1
    fi
}

# cluster_up STATE [accounting|none]
cluster_up() {
    STATE=$1
    local accounting=${2:-accounting}
    export PATH="$PATH:/usr/sbin:/sbin"
    mkdir -p "$STATE"/{etc,log,pids,ctld,spool}
    export SLURM_CONF="$STATE/etc/slurm.conf"
    CTLD_PORT=$(_free_port); SLURMD_PORT=$(_free_port); DBD_PORT=$(_free_port); DB_PORT=$(_free_port)
    local p0; p0=$(_free_port); SRUN_PORTS="$p0-$((p0 + 20))"
    _write_slurm_conf "$accounting"
    local t0=$SECONDS
    _start_munge || return 1
    if [ "$accounting" = accounting ]; then
        _start_mariadb || return 1
        _start_slurmdbd || return 1
    fi
    _spawn slurmctld slurmctld -D -i -f "$SLURM_CONF"
    _wait_for slurmctld 60 scontrol ping || return 1
    _spawn slurmd slurmd -D -f "$SLURM_CONF"
    _wait_for slurmd 60 _node_idle || return 1
    _check_loopback_only || return 1
    _log "cluster up ($accounting accounting, node $NODE_NAME: $NODE_CPUS CPUs, $NODE_MEM_MB MB) in $((SECONDS - t0)) s"
}

# Stop in reverse order, TERM then KILL, only the PIDs cluster_up recorded.
cluster_down() {
    STATE=$1
    local name pid i
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        [ -f "$STATE/pids/$name.pid" ] || continue
        pid=$(cat "$STATE/pids/$name.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -0 "$pid" 2>/dev/null && { _log "$name ($pid) ignored TERM; killing"; kill -KILL "$pid" 2>/dev/null; }
        fi
        wait "$pid" 2>/dev/null
        rm -f "$STATE/pids/$name.pid"
    done
}
