#!/usr/bin/env bash
# Shared launcher behind every method's train.sh / eval.sh / bench.sh:
#   bash common/launch.sh <method_dir> <module> [args...]
# Puts the method folder's parent and the repo root (the folder holding common/) on PYTHONPATH, picks the
# interpreter ($PYTHON, else the repo's .venv, else python3), and runs `python -m <package>.<module>`;
# with NPROC>1 the same module runs under `torchrun --standalone --nproc_per_node $NPROC`.
set -euo pipefail
method_dir=$(cd "$1" && pwd)
module=$2
shift 2
package=$(basename "$method_dir")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$(dirname "$method_dir"):$root${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-}
if [ -z "$py" ]; then
  if [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; else py=python3; fi
fi
if [ "${NPROC:-1}" -gt 1 ]; then
  exec "$py" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m "$package.$module" "$@"
fi
exec "$py" -m "$package.$module" "$@"
