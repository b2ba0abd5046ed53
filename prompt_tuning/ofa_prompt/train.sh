#!/usr/bin/env bash
# Train: bash train.sh --config configs/refcoco_large_prompt.yaml [--key value ...]; NPROC=N for torchrun.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" train "$@"
