package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/node"
	"github.com/bulwark-ml/bulwark/internal/sample"
)

func newUpCmd(g *globals) *cobra.Command {
	f := &nodeFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole site on this machine with embedded defaults",
		Long: `Up creates the site directory if it is missing, pushes the sample model
when the store has none, starts serving, and prints a curl command that gets
a prediction. Ctrl-C stops it cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if err := ensureSampleModel(cmd.Context(), out, g.site); err != nil {
				return err
			}
			srv, addr, done, err := f.start(cmd.Context(), g)
			if err != nil {
				return err
			}
			if err := waitReady(cmd.Context(), srv, done); err != nil {
				return err
			}
			printTour(out, addr.String())
			return <-done
		},
	}
	f.register(cmd)
	return cmd
}

// ensureSampleModel pushes the sample model unless the store has a model.
func ensureSampleModel(ctx context.Context, out io.Writer, site string) error {
	store, err := modelstore.Open(site)
	if err != nil {
		return err
	}
	if names, err := store.Names(); err == nil && len(names) > 0 {
		fmt.Fprintf(out, "site %s: serving %d model(s) from the store\n", site, len(names))
		return nil
	}
	res := sample.Build()
	tmp, err := os.MkdirTemp("", "bulwark-sample-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, "iris.onnx")
	if err := os.WriteFile(file, res.ONNX, 0o644); err != nil {
		return err
	}
	m, err := store.Push(ctx, sample.ModelName, file, inspectModel, modelstore.PushOptions{})
	if err != nil && !errors.Is(err, modelstore.ErrExists) {
		return fmt.Errorf("push sample model: %w", err)
	}
	if m != nil {
		fmt.Fprintf(out, "site %s: trained the sample model (held-out accuracy %.1f%%) and pushed it as %s\n", site, 100*res.Accuracy, m.Ref())
	}
	return nil
}

// waitReady polls until the node has loaded its models, Serve fails, or
// the deadline passes.
func waitReady(ctx context.Context, srv *node.Server, done <-chan error) error {
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !srv.Ready() {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("node stopped before it was ready")
			}
			return err
		case <-ctx.Done():
			return <-done
		case <-deadline.C:
			var reasons []string
			for _, st := range srv.ModelStatus() {
				if !st.Ready {
					reasons = append(reasons, fmt.Sprintf("%s:%s: %s", st.Name, st.Version, st.Reason))
				}
			}
			return fmt.Errorf("node not ready after 2m: %s", strings.Join(reasons, "; "))
		case <-tick.C:
		}
	}
	return nil
}

func printTour(out io.Writer, addr string) {
	ex := sample.Example()[0]
	body := fmt.Sprintf(`{"inputs":[{"name":"%s","shape":[1,4],"datatype":"FP32","data":[%g,%g,%g,%g]}]}`,
		sample.InputName, ex[0], ex[1], ex[2], ex[3])
	base := "http://" + addr
	fmt.Fprintf(out, `
Bulwark is serving on %[1]s

Get a prediction (label 0=setosa, 1=versicolor, 2=virginica):

  curl -s -X POST %[1]s/v2/models/%[2]s/infer -H 'Content-Type: application/json' \
    -d '%[3]s'

Model metadata:  curl -s %[1]s/v2/models/%[2]s
Readiness:       curl -s -o /dev/null -w '%%{http_code}\n' %[1]s/v2/health/ready
Metrics:         curl -s %[1]s/metrics

Press Ctrl-C to stop.
`, base, sample.ModelName, body)
}
