#!/usr/bin/env bash
# Prompt tuning vs fine-tuning step speed/memory and beam-search latency: bash bench.sh [--size paper] [--device cuda]
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" bench "$@"
