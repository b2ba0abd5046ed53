#!/usr/bin/env bash
# BVTON train: bash train.sh [--config configs/x.yaml] [--key value ...]; NPROC=N for torchrun.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" train "$@"
