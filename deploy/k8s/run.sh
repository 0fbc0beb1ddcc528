#!/usr/bin/env bash
# Runs the pipeline's steps on Kubernetes in order, each after the one before completed:
#   per-image steps   an Indexed Job of SHARDS pods (--shard auto: JOB_COMPLETION_INDEX + MASKDISTILL_SHARD_COUNT)
#   merges, training  one pod each (training with a GPU when GPU=1)
# Knobs: SHARDS (4), IMAGE (maskdistill:latest, see Dockerfile), GPU (0), NAMESPACE (the context's),
# STEPS (the manifests to run, default all of [1-7]*.yaml in order), TIMEOUT per step in seconds (172800).
# The dataset is expected at /data/dataset of the maskdistill-data volume (00-volume.yaml), VOC layout
# (JPEGImages/, ImageSets/); edit '--dataset voc' and the image paths in the manifests for COCO.
# A step's pods run with --resume: rerunning this script after a failure continues where it stopped
# (a finished step's Job is deleted and rerun; its shards find their work done).
set -euo pipefail
cd "$(dirname "$0")"
SHARDS="${SHARDS:-4}" IMAGE="${IMAGE:-maskdistill:latest}" GPU="${GPU:-0}" TIMEOUT="${TIMEOUT:-172800}"
ns=(); [ -n "${NAMESPACE:-}" ] && ns=(--namespace "$NAMESPACE")
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: SHARDS must be a positive integer" >&2; exit 2; }

render() {  # the manifest with this run's shards, image and GPU
  sed -E -e "s/^( *)(completions|parallelism): [0-9]+ +# MD_SHARDS/\1\2: $SHARDS  # MD_SHARDS/" \
         -e "s/value: \"[0-9]+\"\}  # MD_SHARDS/value: \"$SHARDS\"}  # MD_SHARDS/" \
         -e "s#image: [^ ]+  \# MD_IMAGE#image: $IMAGE  \# MD_IMAGE#" \
         -e "$( [ "$GPU" = 1 ] && echo 's/# (nvidia.com\/gpu: 1)  # MD_GPU.*/\1/' || echo 's/^$//' )" "$1"
}

kubectl apply "${ns[@]}" -f 00-volume.yaml
for f in ${STEPS:-[1-7]*.yaml}; do
  job="$(grep -m1 -oE 'name: md-[a-z-]+' "$f" | cut -d' ' -f2)"
  kubectl delete job "${ns[@]}" "$job" --ignore-not-found --wait=true >/dev/null
  render "$f" | kubectl apply "${ns[@]}" -f -
  echo "run.sh: $job started"
  t0=$SECONDS
  while :; do
    state="$(kubectl get job "${ns[@]}" "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')"
    case "$state" in
      *Complete*) echo "run.sh: $job complete in $((SECONDS - t0)) s"; break ;;
      *Failed*) echo "run.sh: $job failed; see 'kubectl logs ${ns[*]} -l step=${job#md-} --prefix'" >&2; exit 1 ;;
    esac
    [ $((SECONDS - t0)) -lt "$TIMEOUT" ] || { echo "run.sh: $job still running after $TIMEOUT s" >&2; exit 1; }
    sleep 10
  done
done
