#!/usr/bin/env bash
# A single-node SLURM cluster with accounting (munge, MariaDB, slurmdbd, slurmctld, slurmd) on
# this machine, for trying and testing qfeat's hydra/launcher=slurm without a real cluster.
#   scripts/slurm_local.sh start    bring it up (idempotent: a live daemon is left as it is)
#   scripts/slurm_local.sh stop     stop exactly the daemons this script started (by pid)
#   scripts/slurm_local.sh status   one line per daemon, then sinfo; exit 0 only if all are up
# Needs root and Debian's slurmctld slurmd slurm-client slurmdbd munge mariadb-server
# (QFEAT_SLURM_INSTALL=1 apt-installs them). State, logs and pid files live under
# $QFEAT_SLURM_STATE (default /var/tmp/qfeat-slurm); the two config files are written to
# /etc/slurm, refusing to overwrite ones this script did not write. See docs/cluster.md.
set -euo pipefail

STATE=${QFEAT_SLURM_STATE:-/var/tmp/qfeat-slurm}
DB_PORT=${QFEAT_SLURM_DB_PORT:-33061}
CLUSTER=qfeat
PARTITION=debug
CONF_DIR=/etc/slurm
MARK="# written by qfeat scripts/slurm_local.sh"
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)

say() { echo "slurm_local: $*"; }
die() { say "error: $*" >&2; exit 1; }

pid_of() { # the recorded pid of daemon $1 if that process is alive and is that daemon
  local file="$STATE/pids/$1.pid" pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$1" ]] || return 1
  echo "$pid"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
  local limit=$1 what=$2 t=0
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((t++ < limit * 2)) || die "$what not ready after ${limit}s (logs: $STATE/log)"
    sleep 0.5
  done
}

launch() { # launch NAME COMMAND...: start a foreground daemon detached, record its pid
  local name=$1
  shift
  if pid=$(pid_of "$name"); then
    say "$name already running (pid $pid)"
    return 0
  fi
  setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
  echo $! >"$STATE/pids/$name.pid"
  say "started $name (pid $!)"
}

write_conf() { # write_conf FILE MODE: stdin to FILE unless a foreign FILE is there
  local file=$1 mode=$2 tmp
  if [[ -e $file ]] && ! grep -qF "$MARK" "$file"; then
    die "$file exists and was not written by this script; move it away first"
  fi
  tmp=$(mktemp "$file.XXXXXX")
  { echo "$MARK"; cat; } >"$tmp"
  chmod "$mode" "$tmp"
  mv "$tmp" "$file"
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  [[ ${QFEAT_SLURM_INSTALL:-0} == 1 ]] || die "missing packages: ${missing[*]} (apt-get install them, or set QFEAT_SLURM_INSTALL=1)"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

configure() {
  local node host
  node=$(slurmd -C | head -1)  # NodeName=<host> CPUs=... RealMemory=...
  host=$(hostname -s)
  write_conf "$CONF_DIR/slurm.conf" 644 <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# A requeued job may restart after 10 s instead of the default 120 s.
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups needed.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
KillWait=5
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it every job takes the node's whole memory and jobs run one at a time.
DefMemPerCPU=1024
# Accounting through slurmdbd: sacct is what lets submitit see a cancelled job's state.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  write_conf "$CONF_DIR/slurmdbd.conf" 600 <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=qfeat-local
StorageLoc=slurm_acct_db
EOF
}

start_munge() {
  install -d -o munge -g munge -m 755 /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then  # normally made by the package's post-install
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 700 "$STATE/munge"
  if ! pid_of munged >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already answering (not started by this script; left alone)"
    return 0
  fi
  launch munged setpriv --reuid=munge --regid=munge --init-groups \
    munged -F --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log"
  wait_for 20 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
  local sock="$STATE/mysql/mysqld.sock"
  install -d -o mysql -g mysql -m 750 "$STATE/mysql"
  if [[ ! -d $STATE/mysql/data/mysql ]]; then
    mariadb-install-db --user=mysql --datadir="$STATE/mysql/data" --skip-test-db \
      --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log" 2>&1
  fi
  launch mariadbd mariadbd --user=mysql --datadir="$STATE/mysql/data" --socket="$sock" \
    --pid-file="$STATE/mysql/mariadbd.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
    --skip-name-resolve --log-error="$STATE/log/mariadbd.log"
  wait_for 60 mariadb mariadb-admin --socket="$sock" ping
  mariadb --socket="$sock" -u root -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'qfeat-local';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

node_answers() { timeout 30 srun -N1 -n1 -t1 -p "$PARTITION" hostname; }

start() {
  [[ $(id -u) == 0 ]] || die "needs root (it starts slurmd and munged)"
  install_packages
  install -d -m 755 "$STATE" "$STATE"/{pids,log,run,slurmctld,slurmd} "$CONF_DIR"
  configure
  start_munge
  start_mariadb
  launch slurmdbd slurmdbd -D
  wait_for 60 slurmdbd sacctmgr -n list cluster
  if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
  launch slurmctld slurmctld -D -i
  wait_for 60 slurmctld scontrol ping
  launch slurmd slurmd -D
  # sinfo may call the node idle before slurmd has registered: wait for a job to really run.
  wait_for 90 "a job on the node" node_answers
  say "cluster '$CLUSTER' up: partition $PARTITION, $(sinfo -h -o '%c CPUs %m MB' | head -1)"
}

stop() {
  local i name pid
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[i]}
    if pid=$(pid_of "$name"); then
      kill -TERM "$pid"
      for _ in $(seq 60); do [[ -d /proc/$pid ]] || break; sleep 0.25; done
      [[ -d /proc/$pid ]] && kill -KILL "$pid"
      say "stopped $name (pid $pid)"
    fi
    rm -f "$STATE/pids/$name.pid"
  done
}

status() {
  local name pid up=0
  for name in "${DAEMONS[@]}"; do
    if pid=$(pid_of "$name"); then
      say "$name running (pid $pid)"
    else
      say "$name not running (as started by this script)"
      up=1
    fi
  done
  sinfo 2>&1 || up=1
  return $up
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
