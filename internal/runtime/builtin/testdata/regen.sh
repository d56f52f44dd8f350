#!/usr/bin/env bash
# Regenerate the ONNX test fixtures: models (gen_models.py, onnx + numpy)
# and reference outputs (reference.cjs, onnxruntime-node), plus the sample
# model fixture in internal/sample/testdata (iris.onnx written by
# `go run ./cmd/bulwark sample`, iris.json with onnxruntime's outputs).
#
#   ./regen.sh [--crosscheck]
#
# Needs Debian's python3 with python3-onnx and python3-numpy
# (apt-get install -y python3-onnx python3-numpy), Node.js >= 18 and npm,
# and the Go toolchain.
# onnxruntime-node is installed into a temporary directory that is removed
# afterwards; set ORT_NODE_MODULES to an existing node_modules directory that
# holds onnxruntime-node to skip the install, or ORT_NODE_VERSION to pick
# another version than the one the committed files were made with.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
sample_dir="$root/internal/sample/testdata"
cd "$here"

ORT_NODE_VERSION="${ORT_NODE_VERSION:-1.30.0}"

# Debian's interpreter carries python3-onnx; a python3 earlier on PATH
# (pyenv, venv) usually does not.
if [ -x /usr/bin/python3 ]; then
	PY=/usr/bin/python3
else
	PY=python3
fi

if [ -n "${ORT_NODE_MODULES:-}" ]; then
	node_modules="$ORT_NODE_MODULES"
else
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	echo "installing onnxruntime-node@$ORT_NODE_VERSION into a temporary directory" >&2
	(cd "$tmp" && npm install --silent --ignore-scripts --no-audit --no-fund --no-save \
		"onnxruntime-node@$ORT_NODE_VERSION" >&2)
	node_modules="$tmp/node_modules"
fi

rm -f cases/*.onnx cases/*.json bench/small_cnn.onnx
"$PY" gen_models.py
NODE_PATH="$node_modules" node reference.cjs "$@"

# The sample model, trained and written by Bulwark itself.
mkdir -p "$sample_dir"
rm -f "$sample_dir/iris.onnx" "$sample_dir/iris.json" "$sample_dir/iris.inputs.json"
(cd "$root" && go run ./cmd/bulwark sample -o internal/sample/testdata/iris.onnx)
"$PY" gen_models.py --sample "$sample_dir"
NODE_PATH="$node_modules" node reference.cjs "$sample_dir" "$@"
