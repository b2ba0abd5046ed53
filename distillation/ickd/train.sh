#!/usr/bin/env bash
# train: bash train.sh [--config configs/X.yaml] [--key value ...]; NPROC=N for torchrun (train).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" train "$@"
