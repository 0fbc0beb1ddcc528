#!/usr/bin/env bash
# MaskDistill on a SLURM cluster. Submits every stage and returns (watch with squeue):
#   per-image stages  an array job of MD_SHARDS tasks, each 'maskdistill <stage> --shard auto --shard-count N
#                     --resume' (a requeued or resubmitted task resumes), then its merge as one job
#   training stages   one job each, with a GPU (--gres) when the cluster has one
# Each job starts after the one before it succeeded (--dependency=afterok, --kill-on-invalid-dep=yes: a
# failure cancels what depends on it). Knobs (environment variables) are listed in deploy/slurm/README.md;
# MD_DRY_RUN=1 prints the sbatch commands instead of submitting them.
#
#   MD_DATASET=voc MD_ROOT=/data/VOCdevkit/VOC2012 MD_OUT=/shared/md-voc MD_SHARDS=16 deploy/slurm/pipeline.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"

MD_DATASET="${MD_DATASET:-voc}"
MD_ROOT="${MD_ROOT:?set MD_ROOT to the dataset root (VOC: VOC2012 or VOCdevkit; COCO: the folder with images/ and instances.json)}"
MD_OUT="${MD_OUT:-$PWD/maskdistill-run}"
MD_SHARDS="${MD_SHARDS:-4}"
MD_STAGES="${MD_STAGES:-masks,cluster,maskrcnn,detect,pseudolabels,deeplab,segment}"
MD_BIN="${MD_BIN:-node $repo/bin/maskdistill.cjs}"
MD_CPUS="${MD_CPUS:-2}"            # per array task (the process uses this many threads: SLURM_CPUS_PER_TASK)
MD_MEM="${MD_MEM:-8G}"             # per array task
MD_TIME="${MD_TIME:-12:00:00}"     # per array task
MD_TRAIN_CPUS="${MD_TRAIN_CPUS:-8}"
MD_TRAIN_MEM="${MD_TRAIN_MEM:-32G}"
MD_TRAIN_TIME="${MD_TRAIN_TIME:-48:00:00}"
MD_SBATCH_ARGS="${MD_SBATCH_ARGS:-}"   # added to every sbatch (e.g. "--partition=cpu --account=lab")
MD_AFTER="${MD_AFTER:-}"               # a job id the first stage waits for
MD_DRY_RUN="${MD_DRY_RUN:-}"
case "$MD_DATASET" in voc|coco) ;; *) echo "pipeline: MD_DATASET must be voc or coco, got '$MD_DATASET'" >&2; exit 2 ;; esac
[[ "$MD_SHARDS" =~ ^[1-9][0-9]*$ ]] || { echo "pipeline: MD_SHARDS must be a positive integer, got '$MD_SHARDS'" >&2; exit 2; }

# the image folder the training and segment stages read
if [ -z "${MD_IMAGES:-}" ]; then
  if [ "$MD_DATASET" = voc ]; then MD_IMAGES="$MD_ROOT/JPEGImages"; else MD_IMAGES="$MD_ROOT/images"; fi
  for d in "$MD_ROOT/JPEGImages" "$MD_ROOT/VOC2012/JPEGImages" "$MD_ROOT/VOCdevkit/VOC2012/JPEGImages" "$MD_ROOT/images"; do
    if [ -d "$d" ]; then MD_IMAGES="$d"; break; fi
  done
fi
# a GPU for the training stages when any node has one (MD_GPU_GRES="" forces none)
if [ -z "${MD_GPU_GRES+set}" ]; then
  MD_GPU_GRES=""
  if command -v sinfo >/dev/null && sinfo -h -o %G 2>/dev/null | grep -q gpu; then MD_GPU_GRES="gpu:1"; fi
fi

mkdir -p "$MD_OUT/logs"
read -r -a extra <<<"$MD_SBATCH_ARGS"
q() { printf '%q ' "$@"; }                 # shell-quoted words for --wrap
bin="$MD_BIN"                               # may be several words (node .../maskdistill.cjs); not quoted
shards=(--shard auto --shard-count "$MD_SHARDS" --resume)
last="$MD_AFTER"
dry=0
jobs_file="$MD_OUT/jobs.txt"
: >"$jobs_file"

# submit NAME KIND COMMAND: KIND = array (MD_SHARDS tasks), single, or train (GPU, training resources)
submit() {
  local name="$1" kind="$2" cmd="$3"
  local args=(--parsable --job-name="md-$name" --chdir="$MD_OUT" --export=ALL "${extra[@]}")
  [ -n "$last" ] && args+=(--dependency="afterok:$last" --kill-on-invalid-dep=yes)
  case "$kind" in
    array)  args+=(--array="0-$((MD_SHARDS - 1))" --cpus-per-task="$MD_CPUS" --mem="$MD_MEM" --time="$MD_TIME" --output="$MD_OUT/logs/%x_%A_%a.out") ;;
    single) args+=(--cpus-per-task="$MD_CPUS" --mem="$MD_MEM" --time="$MD_TIME" --output="$MD_OUT/logs/%x_%j.out") ;;
    train)  args+=(--cpus-per-task="$MD_TRAIN_CPUS" --mem="$MD_TRAIN_MEM" --time="$MD_TRAIN_TIME" --output="$MD_OUT/logs/%x_%j.out")
            [ -n "$MD_GPU_GRES" ] && args+=(--gres="$MD_GPU_GRES") ;;
  esac
  local id
  if [ -n "$MD_DRY_RUN" ]; then
    dry=$((dry + 1)); id="DRY$dry"
    printf 'sbatch %s--wrap %q\n' "$(q "${args[@]}")" "$cmd"
  else
    id="$(sbatch "${args[@]}" --wrap "$cmd")"
    id="${id%%;*}"
  fi
  echo "$name $id" >>"$jobs_file"
  echo "pipeline: $name ($kind) -> job $id" >&2
  last="$id"
}
stage() { [[ ",$MD_STAGES," == *",$1,"* ]]; }
# 'resume' when the training folder holds a checkpoint (a requeued job continues)
resume_if() { echo "R=; [ -f $(q "$1/checkpoint.safetensors")] && R=--resume;"; }

if stage masks; then
  submit gen-masks array "exec $bin gen-masks $(q --dataset "$MD_DATASET" --dataset-root "$MD_ROOT" --pred-json masks.json "${shards[@]}") ${MD_GEN_MASKS_FLAGS:-}"
  # merge-preds finds masks.shard-I-of-N.json itself; images.json lists the images (sizes) for gen-segmentation
  submit merge-masks single "$bin merge-preds --out masks.json && node -e $(q 'const fs=require("fs");const m=JSON.parse(fs.readFileSync("masks.json","utf8"));fs.writeFileSync("images.json",JSON.stringify({images:m.images,annotations:[],categories:[]}))')"
fi
if stage cluster; then
  cl=(--input-file1 masks.json --dataset-root1 "$MD_ROOT" --dataset "$MD_DATASET" --save-dir cluster-cache --quiet)
  submit cluster-embed array "exec $bin cluster --embed-only $(q "${cl[@]}" --shard auto --shard-count "$MD_SHARDS") ${MD_CLUSTER_FLAGS:-}"
  submit cluster single "exec $bin cluster $(q "${cl[@]}" --output-file clusters.json) ${MD_CLUSTER_FLAGS:-}"
fi
if stage maskrcnn; then
  submit train-maskrcnn train "$(resume_if maskrcnn) exec $bin train-maskrcnn $(q --annotations clusters.json --images "$MD_IMAGES" --out maskrcnn) \$R ${MD_TRAIN_MASKRCNN_FLAGS:-}"
fi
if stage detect; then
  submit detect array "exec $bin detect $(q --weights maskrcnn/model.safetensors --dataset "$MD_DATASET" --dataset-root "$MD_ROOT" --out detections.json "${shards[@]}") ${MD_DETECT_FLAGS:-}"
  submit merge-detections single "exec $bin merge-preds --out detections.json"
fi
if stage pseudolabels; then
  gs=(--input-file detections.json --gt-file "${MD_GT_FILE:-images.json}" --output-dir pseudolabels)
  submit gen-segmentation array "exec $bin gen-segmentation $(q "${gs[@]}" "${shards[@]}") ${MD_GEN_SEGMENTATION_FLAGS:-}"
  submit merge-pseudolabels single "exec $bin gen-segmentation $(q "${gs[@]}" --merge) ${MD_GEN_SEGMENTATION_FLAGS:-}"
fi
if stage deeplab; then
  submit train-deeplab train "$(resume_if deeplab) exec $bin train-deeplab $(q --images "$MD_IMAGES" --labels pseudolabels --out deeplab) \$R ${MD_TRAIN_DEEPLAB_FLAGS:-}"
fi
if stage segment; then
  sg=(--weights deeplab/model.safetensors --images "$MD_IMAGES" --out-dir segment)
  # shows whether this version's segment merges shards (else it runs as one job)
  if $bin segment --help 2>/dev/null | grep -q -- '--merge'; then
    submit segment array "exec $bin segment $(q "${sg[@]}" "${shards[@]}") ${MD_SEGMENT_FLAGS:-}"
    submit merge-segment single "exec $bin segment $(q "${sg[@]}" --merge) ${MD_SEGMENT_FLAGS:-}"
  else
    submit segment train "exec $bin segment $(q "${sg[@]}" --resume) ${MD_SEGMENT_FLAGS:-}"
  fi
fi
echo "pipeline: jobs in $jobs_file; outputs and logs/ in $MD_OUT" >&2
echo "$last"
