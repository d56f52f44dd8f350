package drill

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/oip"
)

// probeSetFormat is the version of a ProbeSet's JSON form.
const probeSetFormat = 1

// probeSetFile is a ProbeSet as JSON. Checksum is the SHA-256 of Set in
// compact form, so it holds however an enclosing document is indented.
type probeSetFile struct {
	Format   int             `json:"format"`
	Checksum string          `json:"checksum"`
	Set      json.RawMessage `json:"set"`
}

type probeSetJSON struct {
	Model  string      `json:"model"`
	Probes []probeJSON `json:"probes"`
}

type probeJSON struct {
	Request  json.RawMessage      `json:"request"`
	Expected []oip.ResponseOutput `json:"expected,omitempty"`
}

// MarshalJSON writes the probes and, once learned, their expected answers,
// with a checksum UnmarshalJSON verifies: a runner may keep them with a
// site and verify a restored site against them later. A value receiver,
// so a ProbeSet held by value in a struct marshals the same.
func (p ProbeSet) MarshalJSON() ([]byte, error) {
	set := probeSetJSON{Model: p.model, Probes: make([]probeJSON, len(p.bodies))}
	for i, b := range p.bodies {
		set.Probes[i].Request = b
		if p.expected != nil {
			set.Probes[i].Expected = p.expected[i]
		}
	}
	raw, err := json.Marshal(&set)
	if err != nil {
		return nil, fmt.Errorf("encode probes of model %s: %w", p.model, err)
	}
	return json.Marshal(&probeSetFile{Format: probeSetFormat, Checksum: setChecksum(raw), Set: raw})
}

func setChecksum(compact []byte) string {
	sum := sha256.Sum256(compact)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// UnmarshalJSON reads what MarshalJSON wrote, refusing a damaged or
// inconsistent set with an error that says why; p is unchanged then.
func (p *ProbeSet) UnmarshalJSON(b []byte) error {
	var f probeSetFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("read probes: %w", err)
	}
	if f.Format != probeSetFormat {
		return fmt.Errorf("read probes: format %d, this version reads %d", f.Format, probeSetFormat)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, f.Set); err != nil {
		return fmt.Errorf("read probes: %w", err)
	}
	if got := setChecksum(compact.Bytes()); got != f.Checksum {
		return fmt.Errorf("read probes: checksum %s, want %s: the probes were changed or damaged", got, f.Checksum)
	}
	var set probeSetJSON
	if err := json.Unmarshal(compact.Bytes(), &set); err != nil {
		return fmt.Errorf("read probes: %w", err)
	}
	q, err := set.probeSet()
	if err != nil {
		return fmt.Errorf("read probes of model %s: %w", set.Model, err)
	}
	*p = *q
	return nil
}

// probeSet rebuilds a ProbeSet, checking every request decodes and every
// probe has expected outputs or none does.
func (s *probeSetJSON) probeSet() (*ProbeSet, error) {
	if s.Model == "" {
		return nil, errors.New("no model")
	}
	if len(s.Probes) == 0 {
		return nil, errors.New("no probes")
	}
	learned := len(s.Probes[0].Expected) > 0
	p := &ProbeSet{model: s.Model}
	if learned {
		p.expected = make([][]oip.ResponseOutput, len(s.Probes))
		p.want = make([][]namedTensor, len(s.Probes))
	}
	for i, pr := range s.Probes {
		if len(pr.Request) > MaxProbeBytes {
			return nil, fmt.Errorf("probe %d: request of %d bytes, more than %d", i, len(pr.Request), MaxProbeBytes)
		}
		if _, err := oip.DecodeInferRequest(pr.Request); err != nil {
			return nil, fmt.Errorf("probe %d: %w", i, err)
		}
		var req oip.InferRequest
		if err := json.Unmarshal(pr.Request, &req); err != nil {
			return nil, fmt.Errorf("probe %d: %w", i, err)
		}
		p.requests = append(p.requests, req)
		p.bodies = append(p.bodies, []byte(pr.Request))
		if learned != (len(pr.Expected) > 0) {
			return nil, fmt.Errorf("probe %d: some probes have expected answers and some not", i)
		}
		if learned {
			w, err := decodeExpected(pr.Expected)
			if err != nil {
				return nil, fmt.Errorf("probe %d: %w", i, err)
			}
			p.expected[i], p.want[i] = pr.Expected, w
		}
	}
	return p, nil
}
