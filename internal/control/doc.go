// Package control is the controller's desired state: deployments written as
// Kubernetes-style YAML documents, each change kept as an immutable
// revision that can be rolled back to, a status written by the reconciler,
// events for people, and a generation counter to wait on for changes.
//
// Flow: Parse (YAML or JSON → Deployment, errors naming line and field) →
// Service.Apply (validated against the model store, then one
// compare-and-swap write to the state.Store: record + revision + event) →
// watchers woken through Changes. The API (api.go) serves the Service over
// HTTP/JSON behind the bearer token; Client (client.go) is its other end,
// used by the CLI.
//
// control sits above modelstore (through the ModelCatalog interface) and
// the state.Store interface; it uses the gateway's policy rules to
// validate a deployment's policy, but the gateway and the nodes learn from
// the controller over its API only.
//
// Seams for what comes next: the reconciler waits on Changes, reads
// deployments with Get/List, reports with SetStatus and AppendEvent; the
// rollout engine reads Spec.Rollout, Status.LastGoodRevision, and rolls
// back with Rollback.
package control
