// Package faultproxy is a small HTTP reverse proxy that injects faults, for
// tests of clients that must survive a sick server: it answers with an error
// status (500, 503, 429...) instead of forwarding, delays a request (a slow
// server), drops the connection without an answer, or cuts a response body
// short. Rules select requests by method, path and query parameter and may
// fire only a bounded number of times; counters tell how many requests
// arrived and how many were hit, so a test can assert that a client retried
// (or did not).
//
// The proxy keeps the client's Host header when it forwards, so requests
// signed for the proxy's address (AWS Signature V4 signs the host) stay valid
// at the real server behind it.
package faultproxy
