#!/usr/bin/env bash
# Pretrained IPT's table: bash pretrain_table.sh --config configs/pretrain_table.yaml --backbone /models/roberta-large
# then bash train.sh --config configs/rte_ipt_prompt.yaml --table_init RUN/table.pt
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
common=$here/../common; [ -d "$common" ] || common=$here/../../common
exec bash "$common/launch.sh" "$here" pretrain_table "$@"
