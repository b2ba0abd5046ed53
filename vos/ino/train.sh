#!/usr/bin/env bash
# Train INO: bash train.sh --config configs/charades.yaml [--key value ...]; NPROC=N for torchrun.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" train "$@"
