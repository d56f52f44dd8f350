package sample_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// ortFixture is testdata/iris.json: the inputs fed to the sample model and
// the outputs onnxruntime computed for testdata/iris.onnx. Same format as
// the builtin runtime's fixtures (internal/runtime/builtin/testdata), made
// by the same regen.sh.
type ortFixture struct {
	Model   string      `json:"model"`
	Inputs  []ortTensor `json:"inputs"`
	Outputs []ortTensor `json:"outputs"`
}

type ortTensor struct {
	Name     string    `json:"name"`
	Datatype string    `json:"datatype"`
	Shape    []int     `json:"shape"`
	Data     []float64 `json:"data"`
}

func (ft ortTensor) tensor(t *testing.T) *tensor.Tensor {
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
		case tensor.Float32:
			out.F32[i] = float32(v)
		case tensor.Int64:
			out.I64[i] = int64(v)
		default:
			t.Fatalf("fixture tensor %s: unexpected datatype %s", ft.Name, ft.Datatype)
		}
	}
	return out
}

const ortTolerance = 1e-5

// TestMatchesOnnxruntime runs the sample model in the builtin runtime and
// compares with onnxruntime's outputs for the same file: both the model
// built now and the committed testdata/iris.onnx that onnxruntime ran.
func TestMatchesOnnxruntime(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "iris.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f ortFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("iris.json: %v", err)
	}
	if len(f.Inputs) != 1 || f.Inputs[0].Name != sample.InputName {
		t.Fatalf("iris.json: want one input %q", sample.InputName)
	}
	if len(f.Outputs) != 2 || f.Outputs[0].Name != sample.ProbsName || f.Outputs[1].Name != sample.LabelName {
		t.Fatalf("iris.json: want outputs %q and %q", sample.ProbsName, sample.LabelName)
	}
	in := f.Inputs[0].tensor(t)

	// The batch starts with sample.Example(), the rows the demo sends.
	ex := sample.Example()
	if in.Shape[0] < len(ex) {
		t.Fatalf("input batch of %d rows, want at least the %d example rows", in.Shape[0], len(ex))
	}
	for r, row := range ex {
		for c, v := range row {
			if got := in.F32[r*4+c]; got != v {
				t.Fatalf("input row %d feature %d = %v, sample.Example() has %v (regenerate testdata)", r, c, got, v)
			}
		}
	}

	committed, err := os.ReadFile(filepath.Join("testdata", f.Model))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.Decode(committed); err != nil {
		t.Fatalf("decode committed %s: %v", f.Model, err)
	}
	for _, tc := range []struct {
		name  string
		model []byte
	}{
		{"fresh", sample.Build().ONNX},
		{"committed", committed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := builtin.LoadBytes(tc.model)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			got, err := m.Infer(context.Background(), map[string]*tensor.Tensor{sample.InputName: in}, nil)
			if err != nil {
				t.Fatalf("infer: %v", err)
			}
			for _, ft := range f.Outputs {
				want := ft.tensor(t)
				g := got[ft.Name]
				if g == nil {
					t.Fatalf("output %s missing", ft.Name)
				}
				if g.DType != want.DType || tensor.ShapeString(g.Shape) != tensor.ShapeString(want.Shape) {
					t.Fatalf("output %s: %v %v, want %v %v", ft.Name, g.DType, g.Shape, want.DType, want.Shape)
				}
				var worstAbs, worstScaled float64
				for i := 0; i < want.Len(); i++ {
					gv, wv := g.Float64At(i), want.Float64At(i)
					d := math.Abs(gv - wv)
					scaled := d / math.Max(math.Abs(wv), 1)
					worstAbs = math.Max(worstAbs, d)
					worstScaled = math.Max(worstScaled, scaled)
					exact := want.DType != tensor.Float32
					if (exact && gv != wv) || (!exact && !(scaled <= ortTolerance)) {
						t.Errorf("output %s[%d] = %v, onnxruntime %v", ft.Name, i, gv, wv)
					}
				}
				t.Logf("output %s: max |builtin - onnxruntime| = %.3g (scaled by max(|ort|,1): %.3g)", ft.Name, worstAbs, worstScaled)
			}
		})
	}
}
