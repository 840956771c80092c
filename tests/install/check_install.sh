#!/usr/bin/env bash
# Installs the build into a fresh prefix, builds tests/install (the README's embedding example
# and a client-only program) from outside the tree against it, and runs both.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S "$src/tests/install" -B "$work/consumer" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DEXAMPLE_SOURCE="$src/apps/examples/embedded_service.cpp" \
  -DPLUGIN_SOURCE="$src/apps/examples/plugin/example_kinds.cpp" \
  -DCMAKE_BUILD_TYPE=Release > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/consumer" || exit 1
# No library of the client-only program may pull in CUDA, OpenBLAS or CAF.
if ldd "$work/consumer/client_only" | grep -E 'libcudart|libcublas|libopenblas|libblas|libcaf'; then
  echo "client_only links a library it must not" >&2
  exit 1
fi
"$work/consumer/client_only"
"$work/consumer/embedded_service"
# The plugin exports its entry point and needs no symbol of the program that loads it.
nm -D --defined-only "$work/consumer/example_kinds.so" | grep -q ' T troupe_register_kinds$' || {
  echo "example_kinds.so does not export troupe_register_kinds" >&2
  exit 1
}
python3 - "$work/consumer/example_kinds.so" <<'PY'
import ctypes, sys
ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)  # RTLD_NOW via ctypes: every symbol resolves
PY
echo "install check: ok"
