#!/usr/bin/env bash
# KD / IPWD step throughput and memory, fast path vs fp32 eager: bash bench.sh [--device cuda] [--out bench.json]
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" bench "$@"
