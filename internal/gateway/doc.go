// Package gateway is Bulwark's fault-tolerant Open Inference Protocol
// gateway. Clients talk to it exactly as to a node (the same OIP v2 REST
// endpoints and {"error"} bodies); behind it, each model has a set of
// replicas, any OIP servers (Bulwark nodes, Triton, KServe runtimes),
// which the gateway reaches over HTTP only. It never imports node or
// runtime.
//
// A request flows: handlers (shed at the model's pending cap, buffer the
// body once, set the deadline) → call (proxy: tries with retries and
// hedging; or vote: N-modular redundancy) → pool (power-of-two-choices on
// outstanding tries, zone preference) → forward (one HTTP try, answer read
// in full) → replica (breaker, outlier ejection, latency EWMA).
//
// Independently, a health checker per replica and model probes
// /v2/health/ready and /v2/models/{m}/ready; budgets (token buckets) keep
// retries and hedges to a share of the traffic; the admin API (bearer
// token) reports status, drains replicas and reloads the config.
//
// Configuration is a YAML file (LoadConfig) or a Config built in code;
// Update swaps it in atomically, keeping the state of replicas that stay,
// so that a controller can later push routing tables the same way.
package gateway
