#!/usr/bin/env bash
# A compare_upsamplers sweep as a Slurm job array: every array task runs the
# same command on one work dir (on a filesystem all nodes share) and trains
# the runs that no other task has claimed; a task that dies blocks nothing.
#   bash tools/slurm_compare.sh PARTITION JOB_NAME TASKS CONFIG WORK_DIR \
#       --upsamplers NAME ... [compare_upsamplers.py options]
# GPUS_PER_TASK (default 1; 0 for none), CPUS_PER_TASK (5), SBATCH_ARGS
# (e.g. "--wait --time=2:00:00"), PYTHON. Prints the job id; each task logs
# to WORK_DIR/slurm/<job>_<task>.log.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
TASKS=$3
CONFIG=$4
WORK_DIR=$5
GPUS_PER_TASK=${GPUS_PER_TASK:-1}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SBATCH_ARGS=${SBATCH_ARGS:-""}
PYTHON=${PYTHON:-python}
TOOLS=$(dirname "$0")
if ! [[ "$TASKS" =~ ^[1-9][0-9]*$ ]]; then
    echo "TASKS must be a positive integer, got '$TASKS'" >&2
    exit 2
fi
GRES=()
if [ "$GPUS_PER_TASK" -gt 0 ]; then
    GRES=(--gres=gpu:"$GPUS_PER_TASK")
fi
mkdir -p "$WORK_DIR/slurm"
# The job starts in this directory with this environment (sbatch's
# defaults); the command is quoted for the shell of --wrap.
COMMAND=$(printf '%q ' "$PYTHON" -u "$TOOLS"/analysis_tools/compare_upsamplers.py \
    "$CONFIG" --work-dir "$WORK_DIR" "${@:6}")
# shellcheck disable=SC2086
sbatch --parsable \
    -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --array=0-$((TASKS - 1)) \
    --ntasks=1 \
    --cpus-per-task="$CPUS_PER_TASK" \
    "${GRES[@]}" \
    --output="$WORK_DIR/slurm/%A_%a.log" \
    $SBATCH_ARGS \
    --wrap="$COMMAND"
