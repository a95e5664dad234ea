#!/usr/bin/env bash
# Stop the cluster started by start_slurm.sh DIR and remove the config it wrote (munge is
# left running for other users).
dir=$(realpath "${1:?usage: stop_slurm.sh DIR}")
for pid in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
  [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
done
for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  grep -qx "# faithdpo test cluster" "$conf" 2>/dev/null && rm -f "$conf"
done
exit 0
