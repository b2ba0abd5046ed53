#!/usr/bin/env bash
# Train: bash train.sh --config configs/rte_ipt_prefix.yaml [--key value ...]; NPROC=N for torchrun.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" train "$@"
