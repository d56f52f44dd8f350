package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// LoadConfig reads and validates a YAML config file. A relative
// admin.tokenFile is read relative to the config file's directory.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := parseConfig(b, filepath.Dir(path), true)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// LoadPartialConfig is LoadConfig for a gateway that takes its models from
// a controller: the models section may be missing or empty. Models it
// does have are routed as the file says unless the controller routes a
// model of the same name (see Follower).
func LoadPartialConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}")
	}
	cfg, err := parseConfig(b, filepath.Dir(path), false)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and validates a YAML config. Every field but models
// has a default; each model's policy is the defaults with the fields the
// model sets replaced, field by field. Errors name the line and the field;
// unknown fields are errors, so a typo cannot silently keep a default.
func ParseConfig(b []byte) (*Config, error) { return parseConfig(b, "", true) }

// parseModels reads a routing table's models section (a configuration
// document with models only; none is fine), each policy over the built-in
// defaults.
func parseModels(b []byte) (map[string]ModelConfig, error) {
	cfg, err := parseConfig(b, "", false)
	if err != nil {
		return nil, err
	}
	if cfg.Models == nil {
		cfg.Models = map[string]ModelConfig{}
	}
	return cfg.Models, nil
}

func parseConfig(b []byte, dir string, needModels bool) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		if !needModels {
			return nil, errors.New("config must be a YAML mapping")
		}
		return nil, errors.New("config must be a YAML mapping with at least a models section")
	}
	root := doc.Content[0]
	idx := newIndex(root)

	// Pass 1, strict: the whole file onto the built-in defaults, which
	// merges defaults and checks every field name and type everywhere
	// (model policies included, decoded here onto zero values).
	cfg := &Config{Listen: DefaultListen, Defaults: DefaultPolicy()}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, idx.explain(err)
	}
	// Pass 2: each model's policy node onto a copy of the merged defaults.
	for name, m := range cfg.Models {
		p := cfg.Defaults.clone()
		if n := idx.node("models." + name + ".policy"); n != nil && n.Kind != yaml.ScalarNode {
			if err := n.Decode(&p); err != nil {
				return nil, idx.explain(err)
			}
		}
		m.Policy = p
		cfg.Models[name] = m
	}
	if len(cfg.Models) == 0 && needModels {
		return nil, &ConfigError{Line: idx.line("models"), Field: "models", Msg: "at least one model is required"}
	}
	if err := readTokenFile(cfg, dir, idx); err != nil {
		return nil, err
	}
	if err := cfg.validate(idx); err != nil {
		return nil, err
	}
	return cfg, nil
}

func readTokenFile(cfg *Config, dir string, idx *index) error {
	a := &cfg.Admin
	if a.TokenFile == "" {
		return nil
	}
	if a.Token != "" {
		return &ConfigError{Line: idx.line("admin.tokenFile"), Field: "admin.tokenFile", Msg: "give token or tokenFile, not both"}
	}
	p := a.TokenFile
	if !filepath.IsAbs(p) && dir != "" {
		p = filepath.Join(dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return &ConfigError{Line: idx.line("admin.tokenFile"), Field: "admin.tokenFile", Msg: err.Error()}
	}
	if a.Token = strings.TrimSpace(string(b)); a.Token == "" {
		return &ConfigError{Line: idx.line("admin.tokenFile"), Field: "admin.tokenFile", Msg: "token file is empty"}
	}
	return nil
}

// UnmarshalYAML accepts "adaptive" or a positive duration.
func (d *HedgeDelay) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "adaptive" {
			d.Fixed = 0
			return nil
		}
		if v, err := time.ParseDuration(n.Value); err == nil && v > 0 {
			d.Fixed = v
			return nil
		}
	}
	return &ConfigError{Line: n.Line, Field: "hedge.delay", Msg: fmt.Sprintf("must be adaptive or a positive duration such as 20ms, got %q", n.Value)}
}

// index maps the dotted field paths of a parsed file to their nodes, to
// put line numbers and field names on errors.
type index struct {
	keys  map[string]*yaml.Node // path → key node (its line)
	vals  map[string]*yaml.Node // path → value node
	byPos []posEntry
}

type posEntry struct {
	line       int
	path, text string // text: the key, or a scalar's value
}

func newIndex(root *yaml.Node) *index {
	ix := &index{keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	ix.walk(root, "")
	return ix
}

func (ix *index) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.keys[p], ix.vals[p] = k, v
			ix.byPos = append(ix.byPos, posEntry{k.Line, p, k.Value})
			ix.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			ix.keys[p], ix.vals[p] = c, c
			ix.walk(c, p)
		}
	case yaml.ScalarNode:
		ix.byPos = append(ix.byPos, posEntry{n.Line, path, n.Value})
	}
}

func (ix *index) node(path string) *yaml.Node { return ix.vals[path] }

func (ix *index) exact(path string) bool { return ix.keys[path] != nil }

// line is the line of path, or of its nearest ancestor in the file (a
// field left to its default has no line of its own).
func (ix *index) line(path string) int {
	for path != "" {
		if k := ix.keys[path]; k != nil {
			return k.Line
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// at finds the path of a key or scalar on line whose text matches.
func (ix *index) at(line int, match func(string) bool) string {
	for _, e := range ix.byPos {
		if e.line == line && match(e.text) {
			return e.path
		}
	}
	return ""
}

var (
	reUnknown = regexp.MustCompile(`^line (\d+): field (\S+) not found in type`)
	reType    = regexp.MustCompile("^line (\\d+): cannot unmarshal \\S+ `([^`]*)`")
)

// explain rewrites the decoder's errors to name the field as well as the
// line: "line 7: defaults.retry.attempts: cannot unmarshal ...".
func (ix *index) explain(err error) error {
	var te *yaml.TypeError
	var ce *ConfigError
	switch {
	case errors.As(err, &ce):
		last := ce.Field[strings.LastIndex(ce.Field, ".")+1:]
		if p := ix.at(ce.Line, func(s string) bool { return s == last }); p != "" {
			return &ConfigError{Line: ce.Line, Field: p, Msg: ce.Msg}
		}
		return ce
	case errors.As(err, &te):
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, ix.explainOne(msg))
		}
		return errors.Join(errs...)
	}
	return err
}

func (ix *index) explainOne(msg string) error {
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if p := ix.at(line, func(s string) bool { return s == m[2] }); p != "" {
			return &ConfigError{Line: line, Field: p, Msg: "unknown field"}
		}
	}
	if m := reType.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		val, cut := strings.CutSuffix(m[2], "...")
		if p := ix.at(line, func(s string) bool { return s == val || (cut && strings.HasPrefix(s, val)) }); p != "" {
			_, rest, _ := strings.Cut(msg, ": ")
			return &ConfigError{Line: line, Field: p, Msg: rest}
		}
	}
	return errors.New(msg)
}
