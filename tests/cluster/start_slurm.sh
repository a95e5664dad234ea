#!/usr/bin/env bash
# Start a single-node SLURM cluster on this host for the cluster test: munge, slurmctld and
# slurmd with one "gpu" GRES on /dev/null, no accounting. State and logs live under $1.
# The config goes to /etc/slurm (the SLURM executor plugin drops SLURM_CONF inside jobs, so
# only the default path works); an existing config that this script did not write is never
# touched. Needs root and the Debian packages slurm-wlm and munge (.ci/run installs them).
set -euo pipefail
dir=$(realpath "${1:?usage: start_slurm.sh DIR}")
conf=/etc/slurm/slurm.conf
marker="# faithdpo test cluster"
if [ -e "$conf" ] && ! grep -qx "$marker" "$conf"; then
  echo "refusing to overwrite $conf, which this script did not write" >&2
  exit 2
fi
mkdir -p "$dir/state" "$dir/spool"
host=$(hostname -s)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cpus=$(nproc)

if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || mungekey --create --force
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
fi

mkdir -p /etc/slurm
cat >"$conf" <<CONF
$marker
ClusterName=faithdpo
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=86400
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=gpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
printf '%s\nNodeName=%s Name=gpu File=/dev/null\n' "$marker" "$host" >/etc/slurm/gres.conf

/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 60); do
  if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
    echo "SLURM is up: $(sinfo -h -o '%P %N %t %G')"
    exit 0
  fi
  sleep 1
done
echo "SLURM did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
exit 1
