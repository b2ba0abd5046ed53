#!/usr/bin/env bash
# Train-step speed/memory vs PEFT prefix tuning: bash bench.sh [--device cuda] [--out bench.json]
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" bench "$@"
