package node

import (
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
)

// modelFilter is Config.Models: the model versions a node may load. A nil
// filter allows every version in the store. The controller runs one node
// per deployment version, so each replica serves exactly what it is
// routed for and a bad version cannot share a process with a good one.
type modelFilter map[string]map[string]bool // model → versions; an empty set is every version

// newModelFilter parses "NAME:VERSION" (or "NAME" for all its versions)
// references; none gives the nil filter.
func newModelFilter(refs []string) (modelFilter, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	f := modelFilter{}
	for _, ref := range refs {
		name, version, err := modelstore.ParseRef(ref)
		if err != nil {
			return nil, fmt.Errorf("node: model filter %q: %w", ref, err)
		}
		vs, seen := f[name]
		switch {
		case version == "":
			f[name] = map[string]bool{} // the whole model
		case !seen:
			f[name] = map[string]bool{version: true}
		case len(vs) > 0:
			vs[version] = true
		}
	}
	return f, nil
}

// allows reports whether the node may load name:version.
func (f modelFilter) allows(name, version string) bool {
	if f == nil {
		return true
	}
	vs, ok := f[name]
	return ok && (len(vs) == 0 || vs[version])
}

// allowsModel reports whether the node may load some version of name.
func (f modelFilter) allowsModel(name string) bool {
	_, ok := f[name]
	return f == nil || ok
}
