// Package onnx reads and writes the subset of the ONNX protobuf format that a
// model file holds: ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto and ValueInfoProto. It decodes the wire format directly with
// google.golang.org/protobuf/encoding/protowire, so no generated code is
// carried in the project, and unknown fields are skipped as protobuf requires.
//
// It knows nothing about executing a graph; the builtin runtime does that.
// The decoder is fuzzed: any byte string must give a model or an error,
// never a panic or an unbounded allocation.
package onnx
