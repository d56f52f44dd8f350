package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
)

func newApplyCmd(g *globals) *cobra.Command {
	var (
		file   string
		dryRun bool
		cf     controllerFlags
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update deployments from a YAML file",
		Long: `Apply sends each document of FILE (- for stdin) to the controller, in
order. A document is validated whole (fields, model and versions in the
model store, weights, gateway policy) before anything changes; an error
names the line and the field. A changed spec becomes a new revision; an
identical one changes nothing. With metadata.resourceVersion set, the
apply fails (exit 5) if the deployment changed since that version.

At the first error apply stops: the documents before it stay applied and
are listed. The format is in docs/deployments.md.`,
		Example: "  bulwark apply -f iris.yaml\n  bulwark apply -f iris.yaml --dry-run\n  cat iris.yaml | bulwark apply -f -",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError{errors.New("-f FILE is required (- reads stdin)")}
			}
			var b []byte
			var err error
			if file == "-" {
				b, err = io.ReadAll(cmd.InOrStdin())
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			done, err := cf.client(g).ApplyFile(cmd.Context(), b, dryRun)
			out := cmd.OutOrStdout()
			if g.json {
				if done == nil {
					done = []*control.ApplyResult{}
				}
				if perr := printJSON(out, done); perr != nil {
					return perr
				}
			} else {
				for _, r := range done {
					printApplied(out, r)
				}
			}
			if err != nil {
				if len(done) > 0 {
					names := make([]string, len(done))
					for i, r := range done {
						names[i] = r.Deployment.Metadata.Name
					}
					return fmt.Errorf("%s: %w (applied before it: %s)", file, err, strings.Join(names, ", "))
				}
				return fmt.Errorf("%s: %w", file, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "deployment file (YAML, several documents allowed; - for stdin)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show what would change, without changing anything")
	cf.register(cmd)
	return cmd
}

func printApplied(w io.Writer, r *control.ApplyResult) {
	dry := ""
	if r.DryRun {
		dry = " (dry run)"
	}
	fmt.Fprintf(w, "deployment %s %s (revision %d)%s\n", r.Deployment.Metadata.Name, r.Result, r.Revision, dry)
}
