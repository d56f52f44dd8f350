// Package oip implements the REST binding of the Open Inference Protocol
// (KServe V2): the wire types, a fast codec between JSON bodies and tensors,
// and a small HTTP client.
//
// It sits just above tensor and knows nothing of runtimes, model stores or
// servers, so the node (which serves the protocol) and the gateway (which
// forwards it) share one codec without depending on each other.
//
// Decoding is the hot path of every request and takes bytes from strangers,
// so it is hand-written for the data arrays: the envelope goes through
// encoding/json with each input's data kept as json.RawMessage, then a small
// scanner parses the numbers straight into typed slices, without []any
// boxing. Every allocation is bounded by the size of the body, never by a
// shape the client claims. Responses are produced by an appender rather than
// by reflection for the same reason.
package oip
