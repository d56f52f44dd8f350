// Package node is a serving node: it loads every model version of a model
// store into a runtime and serves them over the Open Inference Protocol
// (KServe V2) REST API, with Prometheus metrics on the same port.
//
// A node is one replica behind the gateway. It is built from three seams
// and nothing else: oip for the wire format, runtime for execution and
// modelstore for verified artifacts; it never imports the gateway, which
// talks to it over HTTP only.
//
// Failure isolation is the point: each model version is verified and
// loaded on its own, and one that fails (checksum mismatch, parse error,
// unsupported operator) is reported as not ready with its reason while
// every other version keeps serving. Shutdown is graceful: on context
// cancellation the node stops accepting connections and lets in-flight
// requests finish.
package node
