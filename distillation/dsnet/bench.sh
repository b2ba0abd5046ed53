#!/usr/bin/env bash
# Batch-1 gated vs full vs standalone dense latency: bash bench.sh [--device cuda] [--out bench.json]
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" bench "$@"
