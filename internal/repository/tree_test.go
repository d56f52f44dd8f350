package repository

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func file(p string) Node { return Node{Path: p, Type: NodeFile, Mode: 0o644} }
func dir(p string) Node  { return Node{Path: p, Type: NodeDir, Mode: 0o755} }
func link(p, target string) Node {
	return Node{Path: p, Type: NodeSymlink, Mode: 0o777, Target: target}
}

func TestTreeValidate(t *testing.T) {
	h := Hash(nil)
	tests := []struct {
		name  string
		nodes []Node
		bad   string // substring of the error; "" means valid
	}{
		{"empty", nil, ""},
		{"plain", []Node{dir("models"), file("models/a.onnx"), link("models/latest", "a.onnx"), file("state.db")}, ""},
		{"symlink up inside", []Node{dir("a"), dir("a/b"), link("a/b/l", "../../c"), file("c")}, ""},
		{"absolute", []Node{file("/etc/passwd")}, "absolute"},
		{"dotdot", []Node{file("../escape")}, "leaves the tree"},
		{"dotdot only", []Node{file("..")}, "leaves the tree"},
		{"inner dotdot", []Node{file("a/../../b")}, "not clean"},
		{"unclean", []Node{file("a//b")}, "not clean"},
		{"dot", []Node{file(".")}, "empty path"},
		{"empty path", []Node{file("")}, "empty path"},
		{"nul", []Node{file("a\x00b")}, "NUL"},
		{"invalid utf8", []Node{file("a\xffb")}, "UTF-8"},
		{"duplicate", []Node{file("a"), file("a")}, "twice"},
		{"unsorted", []Node{file("b"), file("a")}, "not sorted"},
		{"below a file", []Node{file("a"), file("a/b")}, "below file"},
		{"below a symlink", []Node{link("a", "d"), file("a/x"), dir("d")}, "below symlink"},
		{"absolute symlink", []Node{link("l", "/etc")}, "absolute target"},
		{"escaping symlink", []Node{link("l", "../outside")}, "leaves the tree"},
		{"escaping deep symlink", []Node{dir("a"), link("a/l", "../../x")}, "leaves the tree"},
		{"through a symlink", []Node{link("l1", "l2/.."), link("l2", ".")}, "passes through"},
		{"empty target", []Node{link("l", "")}, "bad target"},
		{"unknown type", []Node{{Path: "p", Type: "fifo"}}, "unknown type"},
		{"setuid ok", []Node{{Path: "p", Type: NodeFile, Mode: 0o4755}}, ""},
		{"mode bits", []Node{{Path: "p", Type: NodeFile, Mode: 0o170000}}, "beyond permissions"},
		{"negative size", []Node{{Path: "p", Type: NodeFile, Size: -1}}, "negative"},
		{"dir with content", []Node{{Path: "d", Type: NodeDir, Hash: &h}}, "directory with content"},
		{"symlink with content", []Node{{Path: "l", Type: NodeSymlink, Target: "x", Content: []ID{h}}}, "symlink with content"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Tree{Nodes: tc.nodes}).Validate()
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("valid tree refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.bad) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt mentioning %q", err, tc.bad)
			}
		})
	}
}

func TestSaveTreeSortsAndRefusesHostile(t *testing.T) {
	r, _ := newTestRepo(t)
	ctx := context.Background()
	id, err := r.SaveTree(ctx, &Tree{Nodes: []Node{file("z"), file("a")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tree, err := r.LoadTree(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Nodes) != 2 || tree.Nodes[0].Path != "a" {
		t.Fatalf("loaded tree = %+v", tree.Nodes)
	}
	if _, err := r.SaveTree(ctx, &Tree{Nodes: []Node{file("../../etc/cron.d/x")}}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("hostile tree saved: %v", err)
	}
}

// A tree blob with a hostile path written by someone with the key (or a
// buggy writer) is refused when loaded.
func TestLoadTreeRefusesHostile(t *testing.T) {
	r, _ := newTestRepo(t)
	ctx := context.Background()
	id, _, err := r.SaveBlob(ctx, TreeBlob, []byte(`{"nodes":[{"path":"../x","type":"file","mode":420,"mtime":"2024-01-01T00:00:00Z"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadTree(ctx, id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("hostile tree loaded: %v", err)
	}
}
