package drill

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// ErrUnknownScenario is matched by Builtin's error for a name it does not
// ship.
var ErrUnknownScenario = errors.New("unknown scenario")

// builtinScenarios are the scenarios shipped inside the binary: "default"
// is the demo a new user runs after bulwark up, "short" the one CI runs.
//
//go:embed scenarios/*.yaml
var builtinScenarios embed.FS

// BuiltinNames lists the shipped scenarios, sorted.
func BuiltinNames() []string {
	files, _ := fs.Glob(builtinScenarios, "scenarios/*.yaml")
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, strings.TrimSuffix(path.Base(f), ".yaml"))
	}
	slices.Sort(names)
	return names
}

// Builtin returns a shipped scenario, parsed, and its YAML, which a user
// may save and edit.
func Builtin(name string) (*Scenario, []byte, error) {
	if !slices.Contains(BuiltinNames(), name) {
		return nil, nil, fmt.Errorf("%w %q: the built-in scenarios are %s; or give a scenario file",
			ErrUnknownScenario, name, strings.Join(BuiltinNames(), ", "))
	}
	b, err := builtinScenarios.ReadFile("scenarios/" + name + ".yaml")
	if err != nil {
		return nil, nil, fmt.Errorf("read built-in scenario %s: %w", name, err)
	}
	s, err := ParseScenario(b)
	if err != nil {
		return nil, nil, fmt.Errorf("built-in scenario %s: %w", name, err)
	}
	return s, b, nil
}
