package limit

import (
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/backendtest"
	"github.com/bulwark-ml/bulwark/internal/backend/mem"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return New(mem.New(), 2) })
}
