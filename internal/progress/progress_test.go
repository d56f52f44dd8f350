package progress

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryReportsUntilStoppedThenTheFinalFigure(t *testing.T) {
	var n atomic.Int64
	var calls []int64 // only ever appended from the reporting goroutine, then by stop
	stop := Every(time.Millisecond, func(v int64) { calls = append(calls, v) }, n.Load)
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < 5 && time.Now().Before(deadline) {
		n.Add(1)
		time.Sleep(2 * time.Millisecond) // pacing the work, not synchronisation
	}
	stop()
	if len(calls) < 2 {
		t.Fatalf("%d reports, want at least the first and the last", len(calls))
	}
	if calls[0] > calls[len(calls)-1] || calls[len(calls)-1] != n.Load() {
		t.Fatalf("reports %v, want them rising to the final %d", calls, n.Load())
	}
	before := len(calls)
	n.Add(1)
	time.Sleep(5 * time.Millisecond) // would let a leaked ticker report again
	if len(calls) != before {
		t.Fatalf("reported after stop: %v", calls)
	}
}
