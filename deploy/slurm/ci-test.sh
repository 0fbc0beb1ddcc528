#!/usr/bin/env bash
# A live SLURM test (run by .ci/run before npm test): a one-node SLURM cluster on this machine — munged,
# slurmctld and slurmd with a config written to a temporary folder — runs the 'masks' and 'cluster'
# stages of deploy/slurm/pipeline.sh as 4-task arrays on the demo data (the first 120 of its 313 images,
# the bundled demo backbone), then the same commands run as one process, and the merged outputs must be
# identical (cmp). Prints the throughput of both.
# Stops the daemons and removes every file it made, whatever happens (trap). Installs slurm-wlm and munge
# with apt when they are missing (root; sudo otherwise).
# Knobs: MD_CI_SHARDS (4), MD_CI_IMAGES (120: the first N images by id; "all": 313), MD_CI_TIMEOUT (900 s per stage).
set -euo pipefail
shopt -s inherit_errexit   # a failing command inside $(...) fails the script
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
SHARDS="${MD_CI_SHARDS:-4}"
TIMEOUT="${MD_CI_TIMEOUT:-900}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
log() { echo "slurm-ci: $*"; }
since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

missing=()
for c in munged mungekey slurmctld slurmd sbatch squeue scontrol; do command -v "$c" >/dev/null || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing slurm-wlm and munge (missing: ${missing[*]})"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends slurm-wlm munge
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/maskdistill-slurm.XXXXXX")"
chmod 755 "$work"
pids=()
cleanup() {
  local rc=$?
  if [ -f "$work/slurm.conf" ] && [ -n "${SLURM_CONF:-}" ]; then
    scancel --quiet --user="$(id -un)" 2>/dev/null || true   # only this private cluster's jobs
    sleep 1
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ "$rc" != 0 ]; then
    for f in "$work"/*.log "$work"/out/logs/*; do [ -f "$f" ] && { echo "---- $f (last lines)"; tail -n 15 "$f"; }; done
  fi
  rm -rf "$work"
  log "daemons stopped, $work removed (exit $rc)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# munge: a fresh key and socket in the temporary folder
mkdir -m 700 "$work/munge"
mungekey --create --keyfile="$work/munge/munge.key" --force >/dev/null
chmod 400 "$work/munge/munge.key"
munged --foreground --force --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
  --pid-file="$work/munge/munged.pid" --seed-file="$work/munge/munged.seed" >>"$work/munged.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$work/munge/munge.socket" ] || { log "munged did not start"; exit 1; }

# slurm: one node (this machine, its CPUs), one partition, no accounting, no cgroups
node="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
port=$(( 20000 + RANDOM % 20000 ))
mkdir -p "$work/state" "$work/spool" "$work/out"
cat >"$work/slurm.conf" <<EOF
ClusterName=maskdistill-ci
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
SlurmUser=$(id -un)
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$work/slurm.conf"
slurmctld -D -c -f "$SLURM_CONF" >>"$work/slurmctld.log" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >>"$work/slurmd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  state="$(sinfo -h -n "$node" -o %T 2>/dev/null || true)"
  [ "$state" = idle ] && break
  sleep 0.2
done
[ "$state" = idle ] || { log "node $node is '$state', not idle"; exit 1; }
log "SLURM $(sinfo -V | cut -d' ' -f2) up: node $node, $cpus CPUs, partition ci (config $SLURM_CONF)"

# the demo data (its first MD_CI_IMAGES images) as a COCO layout
data="$repo/data/demo"
MD_CI_IMAGES="${MD_CI_IMAGES:-120}"
if [ "$MD_CI_IMAGES" != all ]; then
  data="$work/data"; mkdir -p "$data/images"
  node -e '
    const fs = require("fs"), [src, dst, n] = process.argv.slice(1);
    const gt = JSON.parse(fs.readFileSync(src + "/instances.json", "utf8"));
    const images = gt.images.sort((a, b) => a.id - b.id).slice(0, Number(n)), ids = new Set(images.map((i) => i.id));
    for (const im of images) fs.copyFileSync(src + "/images/" + im.file_name, dst + "/images/" + im.file_name);
    fs.writeFileSync(dst + "/instances.json", JSON.stringify({ ...gt, images, annotations: gt.annotations.filter((a) => ids.has(a.image_id)) }));
  ' "$repo/data/demo" "$data" "$MD_CI_IMAGES"
fi
images="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1] + "/instances.json", "utf8")).images.length)' "$data")"
weights="$repo/data/backbones/demo_vit.safetensors"
export MASKDISTILL_QUIET=1
export MD_DATASET=coco MD_ROOT="$data" MD_OUT="$work/out" MD_SHARDS="$SHARDS" MD_CPUS=1 MD_MEM=1G MD_TIME=30:00 MD_GPU_GRES=
export MD_GEN_MASKS_FLAGS="--weights $weights --resize 96 --device cpu"
export MD_CLUSTER_FLAGS="--dataset voc --gt-file1 $data/instances.json --weights $weights --patch-size 16 --device cpu"

# seconds from the first task's start to the last task's end of a job (scontrol keeps finished jobs: MinJobAge)
job_span() {
  scontrol show job -o "$1" | grep -oE '(StartTime|EndTime)=[0-9T:-]+' | while IFS== read -r k v; do echo "$k $(date -d "$v" +%s)"; done |
    awk '$1 == "StartTime" && (!s || $2 < s) { s = $2 } $1 == "EndTime" && $2 > e { e = $2 } END { print e - s }'
}
# runs STAGE through pipeline.sh and waits for its last job (a failed job cancels the sentinel: sbatch --wait fails);
# prints: end-to-end seconds, array tasks' span, merge job's span
run_stage() {
  local t0 last wall
  t0=$(date +%s.%N)
  last="$(MD_STAGES="$1" deploy/slurm/pipeline.sh)"
  # (a sentinel cancelled for a failed dependency can end sbatch --wait with status 0: the job states decide)
  timeout "$TIMEOUT" sbatch --wait --quiet --job-name=md-wait --dependency="afterok:$last" --kill-on-invalid-dep=yes \
    --cpus-per-task=1 --mem=10M --output=/dev/null --wrap true || true
  wall="$(since "$t0")"
  local id states
  for id in $(cut -d' ' -f2 "$MD_OUT/jobs.txt"); do
    states="$(scontrol show job -o "$id" | grep -oE 'JobState=[A-Z_]+' | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
    log "stage $1: job $id: $states" >&2
    [[ "$states" =~ ^\ ?[0-9]+\ JobState=COMPLETED\ $ ]] || return 1
  done
  echo "$wall $(job_span "$(sed -n 1p "$MD_OUT/jobs.txt" | cut -d' ' -f2)") $(job_span "$(sed -n 2p "$MD_OUT/jobs.txt" | cut -d' ' -f2)")"
}
log "stage masks: gen-masks as a $SHARDS-task array on $images images, then merge-preds"
r="$(run_stage masks)" || { log "stage masks failed"; exit 1; }
read -r t_masks a_masks m_masks <<<"$r"
log "stage cluster: cluster --embed-only as a $SHARDS-task array, then cluster on the merged cache"
r="$(run_stage cluster)" || { log "stage cluster failed"; exit 1; }
read -r t_cluster a_cluster m_cluster <<<"$r"
if squeue -h | grep -q .; then log "jobs left in the queue:"; squeue; exit 1; fi

# the same commands as one process (every core)
single="$work/single"
mkdir -p "$single"
t0=$(date +%s.%N)
node bin/maskdistill.cjs gen-masks --dataset coco --dataset-root "$data" --pred-json "$single/masks.json" $MD_GEN_MASKS_FLAGS >/dev/null
s_masks="$(since "$t0")"
t0=$(date +%s.%N)
node bin/maskdistill.cjs cluster --input-file1 "$single/masks.json" --dataset-root1 "$data" --dataset coco --save-dir "$single/cluster-cache" \
  --quiet --output-file "$single/clusters.json" $MD_CLUSTER_FLAGS >/dev/null
s_cluster="$(since "$t0")"

for f in masks.json masks.json.errors.jsonl clusters.json clusters.matched.json; do
  cmp "$single/$f" "$MD_OUT/$f"
  log "identical: $f ($(wc -c <"$single/$f") bytes)"
done
rate() { awk -v n="$images" -v s="$1" 'BEGIN { if (s > 0) printf "%.0f", n * 3600 / s; else printf "-" }'; }
log "throughput on $images images, $cpus cores ($SHARDS-task arrays, 1 CPU per task; 1 process: all cores)"
printf 'slurm-ci: %-14s %11s %9s %13s %13s %12s %13s\n' stage "1 proc s" "tasks s" "merge job s" "end-to-end s" "1 proc img/h" "tasks img/h"
printf 'slurm-ci: %-14s %11.1f %9d %13d %13.1f %12s %13s\n' gen-masks "$s_masks" "$a_masks" "$m_masks" "$t_masks" "$(rate "$s_masks")" "$(rate "$a_masks")"
printf 'slurm-ci: %-14s %11.1f %9d %13d %13.1f %12s %13s\n' cluster "$s_cluster" "$a_cluster" "$m_cluster" "$t_cluster" "$(rate "$s_cluster")" "$(rate "$a_cluster")"
log "(tasks s: first task start to last task end, scontrol's 1 s clock; end-to-end: pipeline.sh to the last job's end, scheduling and sbatch --wait polling included)"
log "passed: $SHARDS-task arrays through sbatch give the bytes of one process"
