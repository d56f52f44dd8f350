// Package runtime is the seam between the serving node and whatever
// executes a model: the builtin pure-Go ONNX interpreter today; onnxruntime
// through cgo, a remote OIP server or a supervised process later. A runtime
// knows tensors and files, never HTTP: it imports tensor and nothing above.
package runtime
