#!/usr/bin/env bash
# Label-propagation and training-step benchmark: bash bench.sh [--device cuda] [--out bench.json]
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" bench "$@"
