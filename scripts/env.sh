# Source this file: it creates .venv (once) with the pinned CPU build of PyTorch and nmt installed
# in editable mode, reinstalls when pyproject.toml changes, and activates it.
#   NMT_VENV=/path      use another virtual environment
#   NMT_TORCH=2.13.0    the torch release installed when none is present (a CUDA machine with its
#                       own torch keeps it: torch is only installed where it is missing)
_nmt_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_nmt_venv=${NMT_VENV:-$_nmt_root/.venv}
if [ ! -x "$_nmt_venv/bin/python" ]; then
  python3 -c 'import sys; assert sys.version_info >= (3, 10), "nmt needs Python >= 3.10"' || return 1 2>/dev/null || exit 1
  echo "creating $_nmt_venv" >&2
  python3 -m venv "$_nmt_venv"
fi
# shellcheck disable=SC1091
. "$_nmt_venv/bin/activate"
_nmt_want=$(cat "$_nmt_root/pyproject.toml" | sha1sum | cut -d' ' -f1)
if [ "$(cat "$_nmt_venv/.nmt-installed" 2>/dev/null)" != "$_nmt_want" ]; then
  echo "installing nmt and its dependencies into $_nmt_venv" >&2
  python -m pip install -q --upgrade pip
  python -c 'import torch' 2>/dev/null || python -m pip install -q "torch==${NMT_TORCH:-2.13.0}"
  python -m pip install -q -e "$_nmt_root[dev]"
  echo "$_nmt_want" > "$_nmt_venv/.nmt-installed"
fi
unset _nmt_root _nmt_venv _nmt_want
