// Package builtin is Bulwark's default runtime: a pure-Go (no cgo) ONNX
// interpreter. Load decodes the model file, checks the IR and opset
// versions, builds one kernel per node (failing on any unsupported operator
// by name), folds the constant parts of the graph, and leaves an immutable
// program. Infer walks the program with a fresh value table per call, so
// concurrent requests share nothing mutable.
//
// Kernels live in ops_*.go, one file per family. The rule every kernel keeps:
// never modify an input tensor (inputs may be weights shared by all calls);
// return new tensors, or an input unchanged.
package builtin
