// Package schedule runs a site's backups on an interval: a backup, then
// the retention policy, then a copy to the off-site repository. A failed
// run is retried after a short delay and reported, and the age of the
// last good backup in each place (the current recovery point objective)
// is kept for the status API and Prometheus.
package schedule
