// Package progress reports the progress of long work (a backup, a
// restore) to a callback at a steady pace, from one goroutine, so that
// callers need not make their callbacks safe for concurrent use.
package progress

import "time"

// Every calls report with snapshot() now and then every interval until the
// returned stop is called, then one last time, so the final figures are
// always reported. stop waits for the reporting goroutine to end: after it
// returns, report is never called again.
func Every[P any](interval time.Duration, report func(P), snapshot func() P) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			report(snapshot())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-ended
		report(snapshot())
	}
}
