// Package drill proves a site's fault tolerance and disaster recovery by
// doing it: under steady load it runs a scenario of phases (faults on
// replicas and the controller, a bad rollout, the loss of the whole site
// and its restore from the latest backup), measures what clients saw in
// each phase, the recovery time and the recovery point, checks the
// restored site answers as the lost one did, and writes a report.
//
// The pieces: Scenario (the YAML a drill runs, with an embedded default),
// Load (the vegeta-driven load and its per-second and per-phase record),
// Runner (sites, faults, disaster, recovery, verification) and Report
// (report.json, report.md, and report.html with an SVG timeline).
package drill
