#!/bin/bash
# A seed study on a TPU pod slice (e.g. v4-32: 4 hosts x 4 chips): the same command on every worker;
# jax.distributed finds the others through the TPU metadata. jaxseed must be installed on every worker
# (git clone + bash .ci/setup, or pip install) at the same path.
# Usage: launch/tpu_pod.sh TPU_NAME ZONE CONFIG.yaml [--set key=value ...]
set -euo pipefail
NAME=${1:?TPU name}; ZONE=${2:?zone}; CONFIG=${3:?config}
shift 3
gcloud compute tpus tpu-vm ssh "$NAME" --zone "$ZONE" --worker=all --command \
  "cd ~/jaxseed && .venv/bin/jaxseed run $CONFIG --distributed --heartbeat-timeout 120 $*"
