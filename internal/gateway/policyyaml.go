package gateway

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DecodePolicy reads a model's policy overrides from n, a YAML mapping
// that is part of a larger document (a controller's deployment, say),
// merged field by field over base, and validates the result with the
// same rules as the config file. field is n's dotted path in its document
// (e.g. "spec.policy"): errors are *ConfigError named by that path and by
// the lines of n, so they point into the caller's file. A nil or null n
// yields base. Unknown fields are errors, as in the config file.
func DecodePolicy(n *yaml.Node, base Policy, field string) (Policy, error) {
	p := base.clone()
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return p, policyErrors(field, nil, &p)
	}
	if n.Kind != yaml.MappingNode {
		return base, &ConfigError{Line: n.Line, Field: field, Msg: "must be a mapping of policy fields"}
	}
	// yaml.Node.Decode has no strict mode, so unknown names are found by
	// walking the node against Policy's yaml tags first.
	var unknown []error
	checkKnownFields(n, reflect.TypeOf(Policy{}), field, &unknown)
	if len(unknown) > 0 {
		return base, errors.Join(unknown...)
	}
	ix := newIndex(n)
	if err := n.Decode(&p); err != nil {
		return base, prefixFields(ix.explain(err), field)
	}
	if err := policyErrors(field, ix, &p); err != nil {
		return base, err
	}
	return p, nil
}

// policyErrors validates p with the config file's rules; ix (nil for no
// file) gives lines relative to the policy node.
func policyErrors(field string, ix *index, p *Policy) error {
	var loc locator
	if ix != nil {
		loc = prefixedLocator{ix: ix, prefix: field + "."}
	}
	v := validator{loc: loc}
	v.policy(field, p)
	return errors.Join(v.errs...)
}

// prefixedLocator finds fields named with the caller's prefix in an index
// built from the policy node alone.
type prefixedLocator struct {
	ix     *index
	prefix string
}

func (l prefixedLocator) line(field string) int {
	rel, ok := strings.CutPrefix(field, l.prefix)
	if !ok {
		return 0
	}
	return l.ix.line(rel)
}

func (l prefixedLocator) exact(field string) bool {
	rel, ok := strings.CutPrefix(field, l.prefix)
	return ok && l.ix.exact(rel)
}

// prefixFields puts prefix in front of the field of every *ConfigError in
// err (a single error or a join).
func prefixFields(err error, prefix string) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, prefixFields(e, prefix))
		}
		return errors.Join(out...)
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return &ConfigError{Line: ce.Line, Field: prefix + "." + ce.Field, Msg: ce.Msg}
	}
	return err
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// checkKnownFields reports every mapping key under n that t (a struct with
// yaml tags) does not have, recursively through nested structs.
func checkKnownFields(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(unmarshalerType) {
		return // scalars, lists and custom types are checked by Decode
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" {
			continue // a merge key; its contents are checked by Decode's types
		}
		ft, ok := fields[k.Value]
		if !ok {
			*errs = append(*errs, &ConfigError{Line: k.Line, Field: path + "." + k.Value,
				Msg: fmt.Sprintf("unknown field (known: %s)", strings.Join(sortedKeys(fields), ", "))})
			continue
		}
		checkKnownFields(v, ft, path+"."+k.Value, errs)
	}
}
