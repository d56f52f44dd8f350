package control

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parse reads one deployment document, YAML or JSON (JSON is YAML), fills
// the defaults and validates everything that does not need the model
// store. Errors are joined *FieldErrors naming the line and the field
// ("line 9: spec.replicas: must be at least 1, got 0"); unknown fields are
// errors, so a typo cannot silently keep a default. A body with several
// documents is refused: SplitDocuments cuts a file into bodies first.
func Parse(b []byte) (*Deployment, error) {
	docs, err := decodeDocuments(b)
	if err != nil {
		return nil, err
	}
	switch len(docs) {
	case 0:
		return nil, &FieldError{Field: "document", Msg: "empty: expected a Deployment"}
	case 1:
	default:
		return nil, &FieldError{Line: docs[1].Line, Field: "document",
			Msg: fmt.Sprintf("%d documents in one body; apply them one at a time", len(docs))}
	}
	d, err := decodeDeployment(docs[0])
	if err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// syntaxError is YAML that does not parse; the decoder's message already
// names the line.
type syntaxError struct{ err error }

func (e *syntaxError) Error() string        { return e.err.Error() }
func (e *syntaxError) Unwrap() error        { return e.err }
func (e *syntaxError) Is(target error) bool { return target == ErrInvalid }

// decodeDocuments returns the non-empty documents of b, each the root
// node of its content.
func decodeDocuments(b []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, &syntaxError{err}
		}
		if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
			continue // an empty document, e.g. before a leading ---
		}
		docs = append(docs, doc.Content[0])
	}
}

// Document is one document of a multi-document file. Body is padded with
// empty lines so that line numbers in errors about it are the file's.
type Document struct {
	Line int // where the document starts in the file
	Body []byte
}

// SplitDocuments cuts a YAML file at its document markers ("---" and "..."
// at the start of a line, which YAML reserves there even inside block
// text), dropping empty documents.
func SplitDocuments(b []byte) []Document {
	lines := strings.SplitAfter(string(b), "\n")
	var docs []Document
	start := 0
	flush := func(end int) {
		body := strings.Repeat("\n", start) + strings.Join(lines[start:end], "")
		if ds, err := decodeDocuments([]byte(body)); err != nil || len(ds) > 0 {
			docs = append(docs, Document{Line: start + 1, Body: []byte(body)})
		}
	}
	for i, l := range lines {
		if isMarker(l, "---") && i > start {
			flush(i)
			start = i
		} else if isMarker(l, "...") {
			flush(i)
			start = i + 1
		}
	}
	if start < len(lines) {
		flush(len(lines))
	}
	return docs
}

func isMarker(line, m string) bool {
	rest, ok := strings.CutPrefix(line, m)
	return ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r')
}

// parser decodes a document node by node, recording the line of every
// field and collecting every problem rather than stopping at the first.
type parser struct {
	errs  []error
	lines map[string]int
}

func (p *parser) fail(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapping returns the fields of a mapping node by name, reporting unknown
// and repeated keys. A missing or null node is an empty mapping.
func (p *parser) mapping(n *yaml.Node, field string, known ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n = deref(n); n == nil || n.ShortTag() == "!!null" {
		return out
	}
	if n.Kind != yaml.MappingNode {
		name := field
		if name == "" {
			name = "document"
		}
		p.fail(n.Line, name, "must be a mapping, got %s", describe(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := join(field, k.Value)
		switch {
		case !slices.Contains(known, k.Value):
			p.fail(k.Line, path, "unknown field (known: %s)", strings.Join(known, ", "))
		case out[k.Value] != nil:
			p.fail(k.Line, path, "given twice (first on line %d)", p.lines[path])
		default:
			p.lines[path] = k.Line
			out[k.Value] = v
		}
	}
	return out
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// scalar returns a scalar's text, or false after reporting a non-scalar.
func (p *parser) scalar(n *yaml.Node, field string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		p.fail(n.Line, field, "must be a value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) integer(n *yaml.Node, field string) (int64, bool) {
	s, ok := p.scalar(n, field)
	if !ok {
		return 0, false
	}
	var v int64
	if deref(n).ShortTag() != "!!int" || deref(n).Decode(&v) != nil {
		p.fail(n.Line, field, "must be an integer, got %q", s)
		return 0, false
	}
	return v, true
}

func (p *parser) number(n *yaml.Node, field string) (float64, bool) {
	s, ok := p.scalar(n, field)
	if !ok {
		return 0, false
	}
	var v float64
	if t := deref(n).ShortTag(); (t != "!!int" && t != "!!float") || deref(n).Decode(&v) != nil {
		p.fail(n.Line, field, "must be a number, got %q", s)
		return 0, false
	}
	return v, true
}

func (p *parser) duration(n *yaml.Node, field string) (Duration, bool) {
	s, ok := p.scalar(n, field)
	if !ok {
		return 0, false
	}
	if s == "0" {
		return 0, true
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		p.fail(n.Line, field, "must be a duration such as 30s or 500ms, got %q", s)
		return 0, false
	}
	return Duration(v), true
}

func (p *parser) list(n *yaml.Node, field string) []*yaml.Node {
	if n = deref(n); n == nil || n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n.Line, field, "must be a list, got %s", describe(n))
		return nil
	}
	for i, c := range n.Content {
		p.lines[field+"["+strconv.Itoa(i)+"]"] = c.Line
	}
	return n.Content
}
