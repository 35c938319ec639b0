#!/usr/bin/env bash
# A one-node Slurm cluster on this host (slurmctld + slurmd, munge
# authentication), to try tools/slurm_compare.sh and run the `slurm` tests
# without a real cluster. Debian / Ubuntu: apt-get install slurm-wlm munge.
# Run as root (slurmd starts the jobs; munged runs as the munge user).
#   bash tools/misc/slurm_local_cluster.sh start [DIR]
#   export SLURM_CONF=DIR/slurm.conf      # what start prints; then sbatch ...
#   bash tools/misc/slurm_local_cluster.sh stop [DIR]
# DIR (default $TMPDIR/mmdysample-slurm, $TMPDIR being /tmp when unset)
# holds the config, state, logs and pid files. PORT (default 6817; slurmd
# uses PORT+1). The node is this host as `slurmd -C` describes it, in the
# partition `local`.
set -euo pipefail
ACTION=${1:-}
DIR=$(realpath -m "${2:-${TMPDIR:-/tmp}/mmdysample-slurm}")
PORT=${PORT:-6817}
CONF=$DIR/slurm.conf

stop_pid_file() {
    local file=$1 pid
    pid=$(cat "$file" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$file"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged already answers
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.ours"
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "munged did not answer" >&2
    exit 1
}

write_conf() {
    local host user node
    host=$(hostname -s)
    user=$(id -un)
    # slurmd -C: this host's CPUs, sockets, cores, threads and memory.
    node=$(slurmd -C | head -n 1)
    mkdir -p "$DIR/state" "$DIR/spool"
    cat >"$CONF" <<EOF
ClusterName=mmdysample-local
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

case "$ACTION" in
start)
    command -v slurmctld >/dev/null || {
        echo "slurmctld not found: apt-get install slurm-wlm munge" >&2
        exit 1
    }
    mkdir -p "$DIR"
    start_munge
    write_conf
    export SLURM_CONF=$CONF
    stop_pid_file "$DIR/slurmd.pid"
    stop_pid_file "$DIR/slurmctld.pid"
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 100); do
        if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
            echo "export SLURM_CONF=$CONF"
            exit 0
        fi
        sleep 0.2
    done
    echo "the node did not become idle; see $DIR/slurmctld.log and" \
        "$DIR/slurmd.log" >&2
    exit 1
    ;;
stop)
    stop_pid_file "$DIR/slurmd.pid"
    stop_pid_file "$DIR/slurmctld.pid"
    if [ -f "$DIR/munged.ours" ]; then
        stop_pid_file /run/munge/munged.pid
        rm -f "$DIR/munged.ours"
    fi
    ;;
*)
    echo "usage: $0 start|stop [DIR]" >&2
    exit 2
    ;;
esac
