package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/bulwark-ml/bulwark/internal/state"
)

// The hot backup's consistent point: GET /api/v1/backup/state streams a
// transactionally consistent copy of the controller's state (one read
// transaction of the store, so applies go on meanwhile) with the
// desired-state generation in a header and, since the size and checksum
// are known only at the end, the SHA-256 and size in trailers. A copy whose
// trailers are missing or wrong was cut short and must not be used.
const (
	StateGenerationHeader = "X-Bulwark-State-Generation"
	StateSHA256Trailer    = "X-Bulwark-State-Sha256"
	StateSizeTrailer      = "X-Bulwark-State-Size"
	StateErrorTrailer     = "X-Bulwark-State-Error"
)

// mountBackupAPI adds the backup endpoints to the API.
func (a *api) mountBackupAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/backup/state", a.backupState)
}

func (a *api) backupState(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(StateGenerationHeader, strconv.FormatInt(a.svc.Generation(), 10))
	w.Header().Set("Trailer", StateSHA256Trailer+", "+StateSizeTrailer+", "+StateErrorTrailer)
	w.WriteHeader(http.StatusOK)
	sum := sha256.New()
	n, err := a.svc.store.Snapshot(r.Context(), io.MultiWriter(w, sum))
	if err != nil {
		if r.Context().Err() == nil {
			a.log.Error("backup state copy", "err", err, "bytes", n)
		}
		w.Header().Set(StateErrorTrailer, err.Error())
		return
	}
	w.Header().Set(StateSHA256Trailer, hex.EncodeToString(sum.Sum(nil)))
	w.Header().Set(StateSizeTrailer, strconv.FormatInt(n, 10))
}

// StateCopy describes a state copy received from a controller.
type StateCopy struct {
	Generation int64  `json:"generation"` // desired-state generation when the copy began
	Size       int64  `json:"size"`
	SHA256     string `json:"sha256"`
}

// ErrIncompleteCopy: a state copy was cut short or does not match its
// checksum; what was written must be thrown away.
var ErrIncompleteCopy = errors.New("incomplete state copy")

// BackupState streams the controller's consistent state copy into w and
// verifies its size and checksum once it has arrived. On any error what
// reached w is not a usable copy.
func (c *Client) BackupState(ctx context.Context, w io.Writer) (StateCopy, error) {
	var out StateCopy
	const path = "/api/v1/backup/state"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return out, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return out, fmt.Errorf("controller %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		} else if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return out, &APIError{StatusCode: resp.StatusCode, Message: msg}
	}
	if out.Generation, err = strconv.ParseInt(resp.Header.Get(StateGenerationHeader), 10, 64); err != nil {
		return out, fmt.Errorf("GET %s: generation header %q: %w", path, resp.Header.Get(StateGenerationHeader), ErrIncompleteCopy)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), resp.Body)
	if err != nil {
		return out, fmt.Errorf("GET %s: after %d bytes: %w (%w)", path, n, err, ErrIncompleteCopy)
	}
	return checkStateTrailer(resp.Trailer, out.Generation, n, sum)
}

// checkStateTrailer compares what arrived with what the controller says it
// sent.
func checkStateTrailer(tr http.Header, gen, n int64, sum hash.Hash) (StateCopy, error) {
	out := StateCopy{Generation: gen, Size: n, SHA256: hex.EncodeToString(sum.Sum(nil))}
	if msg := tr.Get(StateErrorTrailer); msg != "" {
		return out, fmt.Errorf("controller: state copy failed after %d bytes: %s (%w)", n, msg, ErrIncompleteCopy)
	}
	want, size := tr.Get(StateSHA256Trailer), tr.Get(StateSizeTrailer)
	if want == "" || size == "" {
		return out, fmt.Errorf("state copy ended after %d bytes without its checksum (%w)", n, ErrIncompleteCopy)
	}
	if size != strconv.FormatInt(n, 10) || want != out.SHA256 {
		return out, fmt.Errorf("state copy: received %d bytes with SHA-256 %s, the controller sent %s bytes with %s (%w)",
			n, out.SHA256, size, want, ErrIncompleteCopy)
	}
	return out, nil
}

// StateSummary is what a state holds, for people and for the facts a
// backup snapshot records.
type StateSummary struct {
	Generation  int64               `json:"generation"`
	Deployments []DeploymentSummary `json:"deployments"`
}

// DeploymentSummary is one deployment as stored: its model, versions with
// weights, and current revision.
type DeploymentSummary struct {
	Name     string          `json:"name"`
	Model    string          `json:"model"`
	Versions []VersionWeight `json:"versions"`
	Replicas int             `json:"replicas"`
	Revision int64           `json:"revision"`
}

// DescribeState reads the desired-state generation and every deployment's
// spec from st (e.g. a state copy opened read-only), in name order.
func DescribeState(ctx context.Context, st state.Store) (*StateSummary, error) {
	out := &StateSummary{Deployments: []DeploymentSummary{}}
	b, err := st.Meta(ctx, generationKey)
	switch {
	case errors.Is(err, state.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("read generation: %w", err)
	default:
		if out.Generation, err = strconv.ParseInt(string(b), 10, 64); err != nil {
			return nil, fmt.Errorf("read generation %q: %w", b, err)
		}
	}
	recs, err := st.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	for _, rec := range recs {
		var doc document
		if err := json.Unmarshal(rec.Data, &doc); err != nil {
			return nil, fmt.Errorf("deployment %s: decode: %w", rec.Name, err)
		}
		out.Deployments = append(out.Deployments, DeploymentSummary{
			Name: rec.Name, Model: doc.Spec.Model, Versions: doc.Spec.Versions,
			Replicas: doc.Spec.Replicas, Revision: rec.Revision,
		})
	}
	return out, nil
}

// ForgetReplicas clears the replicas a state records for adoption. A state
// restored into another site (another directory, another machine) names
// replicas of the site it was copied from: the ports and pids may now be
// another site's processes, which its controller must neither adopt nor
// stop. Cleared, the controller starts the deployments' replicas afresh.
func ForgetReplicas(ctx context.Context, st state.Store) error {
	if err := st.PutMeta(ctx, replicasKey, []byte("[]")); err != nil {
		return fmt.Errorf("clear the recorded replicas: %w", err)
	}
	return nil
}
