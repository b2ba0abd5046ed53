#!/usr/bin/env bash
# Evaluate a checkpoint: bash eval.sh --checkpoint RUN/checkpoints/last.pt --out_dir DIR
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" eval "$@"
