// Package tensor holds typed n-dimensional arrays, the common currency between
// the inference protocol (oip) and the runtimes. It imports nothing of Bulwark's.
//
// A Tensor keeps its elements in exactly one typed slice chosen by its DType,
// in row-major order. Shapes use -1 only in signatures (a dynamic dimension),
// never in a concrete tensor.
package tensor
