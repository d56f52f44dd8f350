package onnx

import (
	"errors"
	"reflect"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func sampleModel() *Model {
	w := FromTensor("W", tensor.FromFloat32([]int{2, 2}, []float32{1, -2, 3.5, 4}))
	return &Model{
		IRVersion:    8,
		OpsetImports: []OpsetID{{Version: 17}},
		ProducerName: "test",
		Metadata:     []StringPair{{Key: "k", Value: "v"}},
		Graph: &Graph{
			Name:         "g",
			Initializers: []*TensorProto{w},
			Nodes: []*Node{{
				Name: "mm", OpType: "MatMul", Inputs: []string{"x", "W"}, Outputs: []string{"y"},
				Attrs: []*Attribute{
					{Name: "i", Type: AttrInt, I: -3},
					{Name: "f", Type: AttrFloat, F: 0.25},
					{Name: "s", Type: AttrString, S: []byte("SAME_UPPER")},
					{Name: "is", Type: AttrInts, Ints: []int64{1, -1, 0}},
					{Name: "fs", Type: AttrFloats, Floats: []float32{1.5, -2}},
				},
			}},
			Inputs:  []*ValueInfo{{Name: "x", ElemType: DataFloat, HasShape: true, Dims: []Dim{{Param: "N"}, {Value: 2, HasValue: true}}}},
			Outputs: []*ValueInfo{{Name: "y", ElemType: DataFloat, HasShape: true, Dims: []Dim{{Param: "N"}, {Value: 0, HasValue: true}}}},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sampleModel()
	got, err := Decode(Encode(m))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got.Graph.Nodes[0].Attrs, m.Graph.Nodes[0].Attrs)
	}
	tt, err := ToTensor(got.Graph.Initializers[0])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tt.F32, []float32{1, -2, 3.5, 4}) || !reflect.DeepEqual(tt.Shape, []int{2, 2}) {
		t.Fatalf("tensor %+v", tt)
	}
}

func TestToTensorTypedFields(t *testing.T) {
	cases := []struct {
		tp   *TensorProto
		want *tensor.Tensor
	}{
		{&TensorProto{Dims: []int64{2}, DataType: DataFloat, FloatData: []float32{1, 2}}, tensor.FromFloat32([]int{2}, []float32{1, 2})},
		{&TensorProto{Dims: []int64{}, DataType: DataInt64, Int64Data: []int64{-7}}, tensor.FromInt64([]int{}, []int64{-7})},
		{&TensorProto{Dims: []int64{2}, DataType: DataBool, Int32Data: []int32{1, 0}}, tensor.FromBool([]int{2}, []bool{true, false})},
		{&TensorProto{Dims: []int64{1}, DataType: DataDouble, DoubleData: []float64{2.5}}, tensor.FromFloat64([]int{1}, []float64{2.5})},
		{&TensorProto{Dims: []int64{1}, DataType: DataInt32, Int32Data: []int32{-9}}, tensor.FromInt32([]int{1}, []int32{-9})},
	}
	for i, c := range cases {
		got, err := ToTensor(c.tp)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Fatalf("case %d: got %+v want %+v", i, got, c.want)
		}
	}
}

func TestToTensorRejectsBadData(t *testing.T) {
	bad := []*TensorProto{
		{Name: "short", Dims: []int64{3}, DataType: DataFloat, FloatData: []float32{1}},
		{Name: "raw", Dims: []int64{2}, DataType: DataFloat, RawData: []byte{1, 2, 3}, HasRawData: true},
		{Name: "neg", Dims: []int64{-1}, DataType: DataFloat},
		{Name: "huge", Dims: []int64{1 << 40, 1 << 40}, DataType: DataFloat},
		{Name: "u8", Dims: []int64{1}, DataType: DataUint8, RawData: []byte{1}, HasRawData: true},
		{Name: "ext", Dims: []int64{1}, DataType: DataFloat, External: true},
	}
	for _, tp := range bad {
		if _, err := ToTensor(tp); err == nil {
			t.Errorf("%s: accepted", tp.Name)
		}
		if err := CheckTensor(tp); err == nil {
			t.Errorf("%s: CheckTensor accepted", tp.Name)
		}
	}
	good := &TensorProto{Name: "ok", Dims: []int64{2}, DataType: DataBool, Int32Data: []int32{0, 3}}
	if err := CheckTensor(good); err != nil {
		t.Errorf("CheckTensor: %v", err)
	}
}

// Raw tensor data must alias the decoded buffer, not copy it: a model's
// weights are then held once while loading.
func TestDecodeAliasesRawData(t *testing.T) {
	b := Encode(sampleModel())
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	raw := m.Graph.Initializers[0].RawData
	if len(raw) == 0 {
		t.Fatal("no raw data")
	}
	start, end := &b[0], &b[len(b)-1]
	p := &raw[0]
	inside := false
	for i := range b {
		if &b[i] == p {
			inside = true
			break
		}
	}
	if !inside {
		t.Fatalf("RawData is a copy, not a slice of the input (%p not in [%p, %p])", p, start, end)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	b := Encode(sampleModel())
	for _, in := range [][]byte{nil, []byte("not a model"), b[:len(b)/2], {0x3a, 0xff}} {
		if _, err := Decode(in); err == nil {
			t.Errorf("decoded %q", in)
		} else if !errors.Is(err, ErrMalformed) && in != nil {
			t.Logf("error without ErrMalformed: %v", err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(sampleModel()))
	f.Add([]byte{})
	f.Add([]byte{0x3a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		for _, init := range m.Graph.Initializers {
			ToTensor(init) // must not panic
		}
		for _, n := range m.Graph.Nodes {
			for _, a := range n.Attrs {
				if a.T != nil {
					ToTensor(a.T)
				}
			}
		}
	})
}

func TestDecodeFloats(t *testing.T) {
	tp := FromTensor("w", tensor.FromFloat32([]int{3}, []float32{1.5, -2, 3.25}))
	got := make([]float32, 2)
	DecodeFloats(got, tp.RawData[4:])
	if !reflect.DeepEqual(got, []float32{-2, 3.25}) {
		t.Fatalf("float32: %v", got)
	}
	tp = FromTensor("d", tensor.FromFloat64([]int{2}, []float64{0.1, -7}))
	got64 := make([]float64, 2)
	DecodeFloats(got64, tp.RawData)
	if !reflect.DeepEqual(got64, []float64{0.1, -7}) {
		t.Fatalf("float64: %v", got64)
	}
}
