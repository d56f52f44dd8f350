package builtin

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"weak"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// fixture is one case made by testdata/gen_models.py with reference outputs
// from onnxruntime (testdata/reference.cjs).
type fixture struct {
	Model           string          `json:"model"`
	Opset           int             `json:"opset"`
	IRVersion       int             `json:"ir_version"`
	Ops             []string        `json:"ops"`
	Tolerance       float64         `json:"tolerance"`
	Inputs          []fixtureTensor `json:"inputs"`
	Outputs         []fixtureTensor `json:"outputs"`
	ExpectLoadError *string         `json:"expect_load_error"`
}

type fixtureTensor struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
	Data     []any  `json:"data"`
}

func (ft fixtureTensor) tensor(t *testing.T) *tensor.Tensor {
	t.Helper()
	dt, err := tensor.ParseDType(ft.Datatype)
	if err != nil {
		t.Fatal(err)
	}
	out := tensor.New(dt, ft.Shape)
	if len(ft.Data) != out.Len() {
		t.Fatalf("fixture tensor %s: %d values for shape %v", ft.Name, len(ft.Data), ft.Shape)
	}
	for i, v := range ft.Data {
		switch dt {
		case tensor.Bool:
			out.Bool[i] = v.(bool)
		case tensor.Float32:
			out.F32[i] = float32(jsonFloat(v))
		case tensor.Float64:
			out.F64[i] = jsonFloat(v)
		case tensor.Int32:
			out.I32[i] = int32(jsonFloat(v))
		case tensor.Int64:
			out.I64[i] = int64(jsonFloat(v))
		}
	}
	return out
}

// jsonFloat reads a number, or the strings onnxruntime's JSON uses for
// non-finite values.
func jsonFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		switch x {
		case "NaN":
			return math.NaN()
		case "Infinity":
			return math.Inf(1)
		case "-Infinity":
			return math.Inf(-1)
		}
	case bool:
		if x {
			return 1
		}
		return 0
	}
	return math.NaN()
}

func loadFixtures(t *testing.T) map[string]fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "cases", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no fixtures in testdata/cases (run testdata/regen.sh)")
	}
	out := map[string]fixture{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f fixture
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = f
	}
	return out
}

// TestConformance runs every fixture and compares with onnxruntime within
// the fixture's relative tolerance (1e-5 unless it says otherwise).
func TestConformance(t *testing.T) {
	for name, f := range loadFixtures(t) {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "cases", f.Model))
			if err != nil {
				t.Fatal(err)
			}
			m, err := LoadBytes(b)
			if f.ExpectLoadError != nil {
				if err == nil {
					t.Fatalf("loaded; want an error mentioning %q", *f.ExpectLoadError)
				}
				if !strings.Contains(err.Error(), *f.ExpectLoadError) {
					t.Fatalf("error %q does not mention %q", err, *f.ExpectLoadError)
				}
				return
			}
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			in := map[string]*tensor.Tensor{}
			for _, ft := range f.Inputs {
				in[ft.Name] = ft.tensor(t)
			}
			tol := f.Tolerance
			if tol == 0 {
				tol = 1e-5
			}
			// Twice: the second run catches kernels that modify weights.
			for run := 0; run < 2; run++ {
				got, err := m.Infer(context.Background(), in, nil)
				if err != nil {
					t.Fatalf("run %d: infer: %v", run, err)
				}
				for _, want := range f.Outputs {
					compareTensor(t, want.Name, got[want.Name], want.tensor(t), tol)
				}
			}
		})
	}
}

func compareTensor(t *testing.T, name string, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("output %s missing", name)
	}
	if got.DType != want.DType {
		t.Fatalf("output %s: datatype %v, want %v", name, got.DType, want.DType)
	}
	if tensor.ShapeString(got.Shape) != tensor.ShapeString(want.Shape) {
		t.Fatalf("output %s: shape %v, want %v", name, got.Shape, want.Shape)
	}
	bad := 0
	for i := 0; i < want.Len(); i++ {
		g, w := got.Float64At(i), want.Float64At(i)
		if !closeEnough(g, w, tol) {
			if bad < 5 {
				t.Errorf("output %s[%d] = %v, want %v", name, i, g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("output %s: %d of %d elements differ", name, bad, want.Len())
	}
}

// closeEnough compares relatively, with an absolute floor of tol for values
// near zero where a relative error means nothing.
func closeEnough(g, w, tol float64) bool {
	if math.IsNaN(w) {
		return math.IsNaN(g)
	}
	if math.IsInf(w, 0) {
		return g == w
	}
	d := math.Abs(g - w)
	return d <= tol*math.Max(math.Abs(w), 1)
}

// TestLoadedModelsDoNotPinFile checks that no compiled fixture model keeps
// the file's bytes reachable: the decoder aliases them (raw tensor data,
// string attributes), so a kernel holding on to the decoded node would keep
// a second copy of every weight alive for the model's life.
func TestLoadedModelsDoNotPinFile(t *testing.T) {
	for name, f := range loadFixtures(t) {
		if f.ExpectLoadError != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("testdata", "cases", f.Model))
		if err != nil {
			t.Fatal(err)
		}
		wp := weak.Make(&b[0])
		m, err := LoadBytes(b)
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		b = nil
		runtime.GC()
		if wp.Value() != nil {
			t.Errorf("%s: the loaded model keeps the file's bytes reachable", name)
		}
		runtime.KeepAlive(m)
	}
}
