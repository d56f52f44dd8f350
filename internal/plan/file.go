package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseAssumptions reads an assumptions file over the defaults:
//
//	replica: {mtbf: 30d, mttr: 200ms}
//	zone:    {failuresPerYear: 1, mttr: 4h}
//	site:    {disastersPerYear: 0.1}
//	backup:  {duration: 5m, interval: 24h}
//	restore: {size: 2GiB, throughput: 100MiB/s, startup: 2s, firstInference: 1s}
//	serving: {k: 2}
//
// Every key is optional. Decoding is strict: an unknown section or key, a
// key given twice, a value that does not read, or one out of range is an
// error naming its line ("line 3: replica.mtbf: must be a positive, finite
// duration, got 0 s"), and all of them are reported together. Keys set
// here are recorded with the source "file".
func ParseAssumptions(b []byte) (Assumptions, error) {
	a := Defaults()
	root, err := singleDocument(b)
	if err != nil {
		return Assumptions{}, err
	}
	lines := map[string]int{}
	var errs []error
	fail := func(line int, field, format string, args ...any) {
		errs = append(errs, &FieldError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for section, body := range pairs(root, "", fail) {
		names := sectionKeys(section.Value)
		switch {
		case names == nil:
			fail(section.Line, section.Value, "unknown section (known: %s)", strings.Join(sectionNames(), ", "))
			continue
		case lines[section.Value] > 0:
			fail(section.Line, section.Value, "given twice (first on line %d)", lines[section.Value])
			continue
		}
		lines[section.Value] = section.Line
		for key, value := range pairs(body, section.Value, fail) {
			name := section.Value + "." + key.Value
			switch {
			case !slices.Contains(names, key.Value):
				fail(key.Line, name, "unknown key (known: %s)", strings.Join(names, ", "))
			case lines[name] > 0:
				fail(key.Line, name, "given twice (first on line %d)", lines[name])
			default:
				lines[name] = key.Line
				v := deref(value)
				if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
					fail(value.Line, name, "must be a value, got %s", describe(v))
				} else if err := a.Set(name, v.Value, "file"); err != nil {
					fail(value.Line, name, "%s", err.(*FieldError).Msg)
				}
			}
		}
	}
	// Range checks too, except on keys already reported: a value that did
	// not read is not also out of range.
	if verr := a.validate(func(key string) int { return lines[key] }); verr != nil {
		for _, e := range verr.(interface{ Unwrap() []error }).Unwrap() {
			if !reported(errs, e.(*FieldError).Field) {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(x, y error) int { return x.(*FieldError).Line - y.(*FieldError).Line })
		return Assumptions{}, errors.Join(errs...)
	}
	return a, nil
}

// reported tells whether key, or its section, already has an error.
func reported(errs []error, key string) bool {
	section, _, _ := strings.Cut(key, ".")
	for _, e := range errs {
		if f := e.(*FieldError).Field; f == key || f == section {
			return true
		}
	}
	return false
}

// syntaxError is YAML that does not parse; the decoder's message names
// the line.
type syntaxError struct{ err error }

func (e *syntaxError) Error() string        { return e.err.Error() }
func (e *syntaxError) Unwrap() error        { return e.err }
func (e *syntaxError) Is(target error) bool { return target == ErrInvalid }

// singleDocument returns the root node of b's one document, nil for a
// file without one. Empty documents (a lone "---") do not count.
func singleDocument(b []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var root *yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return root, nil
		}
		if err != nil {
			return nil, &syntaxError{err}
		}
		if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
			continue
		}
		if root != nil {
			return nil, &FieldError{Line: doc.Content[0].Line, Field: "document", Msg: "an assumptions file holds one document"}
		}
		root = doc.Content[0]
	}
}

// pairs yields the keys and values of a mapping node; a null node is an
// empty mapping, anything else is reported.
func pairs(n *yaml.Node, field string, fail func(line int, field, format string, args ...any)) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		if n = deref(n); n == nil || n.ShortTag() == "!!null" {
			return
		}
		if n.Kind != yaml.MappingNode {
			name := field
			if name == "" {
				name = "document"
			}
			fail(n.Line, name, "must be a mapping, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.ShortTag() == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

// sectionNames lists the file's sections in the order of Keys.
func sectionNames() []string {
	var out []string
	for _, k := range keys {
		s, _, _ := strings.Cut(k.Name, ".")
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// sectionKeys lists the keys of one section, nil for an unknown section.
func sectionKeys(section string) []string {
	var out []string
	for _, k := range keys {
		if s, name, _ := strings.Cut(k.Name, "."); s == section {
			out = append(out, name)
		}
	}
	return out
}
