#!/usr/bin/env bash
# BVTON eval: bash eval.sh [--config configs/x.yaml] [--key value ...]; NPROC=N for torchrun.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" eval "$@"
