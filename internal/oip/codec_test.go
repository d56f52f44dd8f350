package oip

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func mustDecode(t *testing.T, body string) *Request {
	t.Helper()
	req, err := DecodeInferRequest([]byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return req
}

func TestDecodeValid(t *testing.T) {
	cases := []struct {
		name string
		body string
		want *tensor.Tensor
	}{
		{"flat fp32", `{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2.5,-3e2,0.1]}]}`,
			tensor.FromFloat32([]int{2, 2}, []float32{1, 2.5, -300, 0.1})},
		{"nested fp32", `{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2.5],[-3e2,0.1]]}]}`,
			tensor.FromFloat32([]int{2, 2}, []float32{1, 2.5, -300, 0.1})},
		{"partly nested", `{"inputs":[{"name":"x","datatype":"INT32","shape":[2,1,2],"data":[[1,2],[3,4]]}]}`,
			tensor.FromInt32([]int{2, 1, 2}, []int32{1, 2, 3, 4})},
		{"fully nested 3d", `{"inputs":[{"name":"x","datatype":"INT64","shape":[2,1,2],"data":[[[1,-2]],[[3,9007199254740993]]]}]}`,
			tensor.FromInt64([]int{2, 1, 2}, []int64{1, -2, 3, 9007199254740993})},
		{"fp64", `{"inputs":[{"name":"x","datatype":"FP64","shape":[3],"data":[ 0.1 , 1e-300,-0 ]}]}`,
			tensor.FromFloat64([]int{3}, []float64{0.1, 1e-300, math.Copysign(0, -1)})},
		{"bool", `{"inputs":[{"name":"x","datatype":"BOOL","shape":[1,3],"data":[[true,false,true]]}]}`,
			tensor.FromBool([]int{1, 3}, []bool{true, false, true})},
		{"scalar", `{"inputs":[{"name":"x","datatype":"INT32","shape":[],"data":[7]}]}`,
			tensor.FromInt32([]int{}, []int32{7})},
		{"empty batch", `{"inputs":[{"name":"x","datatype":"FP32","shape":[0,4],"data":[]}]}`,
			tensor.FromFloat32([]int{0, 4}, []float32{})},
		{"empty rows", `{"inputs":[{"name":"x","datatype":"FP32","shape":[2,0],"data":[[],[]]}]}`,
			tensor.FromFloat32([]int{2, 0}, []float32{})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := mustDecode(t, c.body)
			got := req.Inputs["x"]
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
			if c.name == "fp64" && !math.Signbit(got.F64[2]) {
				t.Fatal("-0 lost its sign")
			}
		})
	}
}

func TestDecodeEnvelope(t *testing.T) {
	req := mustDecode(t, `{"id":"req-1","parameters":{"k":"v"},
		"inputs":[{"name":"b","datatype":"BOOL","shape":[1],"data":[true]},{"name":"a","datatype":"FP32","shape":[1],"data":[1]}],
		"outputs":[{"name":"y"},{"name":"z"}]}`)
	if req.ID != "req-1" || req.Parameters["k"] != "v" {
		t.Fatalf("id/parameters: %+v", req)
	}
	if strings.Join(req.InputOrder, ",") != "b,a" || len(req.Inputs) != 2 {
		t.Fatalf("inputs: %v", req.InputOrder)
	}
	if strings.Join(req.Outputs, ",") != "y,z" {
		t.Fatalf("outputs: %v", req.Outputs)
	}
}

func TestDecodeErrors(t *testing.T) {
	x := func(datatype, shape, data string) string {
		return `{"inputs":[{"name":"x","datatype":"` + datatype + `","shape":` + shape + `,"data":` + data + `}]}`
	}
	cases := []struct {
		name, body, input, msg string
	}{
		{"malformed", `{"inputs":[`, "", "malformed request body"},
		{"empty body", ``, "", "malformed request body"},
		{"inputs not array", `{"inputs":{}}`, "", "malformed request body"},
		{"no inputs", `{"id":"a"}`, "", `no "inputs"`},
		{"no name", `{"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}`, "", "input 0 has no name"},
		{"duplicate", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`, "x", "more than once"},
		{"bytes", x("BYTES", "[1]", `["a"]`), "x", "datatype BYTES is not supported (supported: FP32, FP64, INT32, INT64, BOOL)"},
		{"fp16", x("FP16", "[1]", `[1]`), "x", "datatype FP16 is not supported"},
		{"bogus type", x("FLOAT", "[1]", `[1]`), "x", `"FLOAT" is not an Open Inference Protocol datatype`},
		{"no datatype", `{"inputs":[{"name":"x","shape":[1],"data":[1]}]}`, "x", "missing datatype"},
		{"no shape", `{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}`, "x", "missing shape"},
		{"no data", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]}`, "x", "missing data"},
		{"negative dim", x("FP32", "[-1,2]", `[1,2]`), "x", "invalid dimension -1"},
		{"fractional dim", x("FP32", "[1.5]", `[1]`), "", "malformed request body"},
		{"too few", x("FP32", "[2,4]", `[1,2,3]`), "x", "shape [2,4] needs 8 values, data has 3"},
		{"too many", x("FP32", "[2]", `[1,2,3]`), "x", "shape [2] needs 2 values, data has 3"},
		{"nested row short", x("FP32", "[2,2]", `[[1,2],[3]]`), "x", "an array at depth 2 has 1 elements, expected 2"},
		{"nested too few rows", x("FP32", "[3,2]", `[[1,2],[3,4]]`), "x", "an array at depth 1 has 2 elements, expected 3"},
		{"too deep", x("FP32", "[2]", `[[1],[2]]`), "x", "nested deeper than shape [2]"},
		{"mixed", x("FP32", "[2,1]", `[[1],2]`), "x", "mixes values and arrays"},
		{"inconsistent depth", x("FP32", "[2,1,1]", `[[[1]],[2]]`), "x", "nesting is inconsistent"},
		{"not array", x("FP32", "[1]", `1`), "x", "must be a JSON array"},
		{"null data", x("FP32", "[1]", `null`), "x", "must be a JSON array"},
		{"string value", x("FP32", "[1]", `["1"]`), "x", "value 0 is a string, datatype FP32 needs numbers"},
		{"null value", x("INT64", "[2]", `[1,null]`), "x", "value 1 is null"},
		{"object value", x("FP32", "[1]", `[{}]`), "x", "value 0 is an object"},
		{"bool for fp", x("FP32", "[1]", `[true]`), "x", "value 0 is a boolean, datatype FP32 needs numbers"},
		{"number for bool", x("BOOL", "[1]", `[1]`), "x", "not a boolean, datatype BOOL needs true or false"},
		{"fraction for int", x("INT32", "[2]", `[1,1.5]`), "x", "value 1 (1.5) is not an integer"},
		{"exponent for int", x("INT64", "[1]", `[1e3]`), "x", "not an integer"},
		{"int32 range", x("INT32", "[1]", `[2147483648]`), "x", "out of range for INT32"},
		{"int64 range", x("INT64", "[1]", `[-9223372036854775809]`), "x", "out of range for INT64"},
		{"fp32 range", x("FP32", "[1]", `[1e39]`), "x", "out of range for FP32"},
		{"fp64 range", x("FP64", "[1]", `[1e309]`), "x", "out of range for FP64"},
		{"hostile shape", x("FP32", "[1000000000000,1000000000000]", `[1,2]`), "x", "needs more than 2^63 values, data has 2"},
		{"big shape", x("FP32", "[100000000]", `[1,2]`), "x", "needs 100000000 values, data has 2"},
		{"dup output", `{"inputs":[],"outputs":[{"name":"y"},{"name":"y"}]}`, "", `output "y" requested more than once`},
		{"unnamed output", `{"inputs":[],"outputs":[{}]}`, "", "requested output 0 has no name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeInferRequest([]byte(c.body))
			if err == nil {
				t.Fatal("no error")
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RequestError: %v", err, err)
			}
			if re.Input != c.input {
				t.Errorf("input = %q, want %q", re.Input, c.input)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not contain %q", err, c.msg)
			}
			if c.input != "" && !strings.HasPrefix(err.Error(), `input "`+c.input+`": `) {
				t.Errorf("error %q does not name the input", err)
			}
		})
	}
}

func TestHostileShapeDoesNotAllocate(t *testing.T) {
	body := []byte(`{"inputs":[{"name":"x","datatype":"FP64","shape":[4000000000],"data":[1]}]}`)
	allocs := testing.AllocsPerRun(10, func() { DecodeInferRequest(body) })
	if allocs > 100 {
		t.Fatalf("%v allocations", allocs)
	}
}

func TestRoundTrip(t *testing.T) {
	in := map[string]*tensor.Tensor{
		"f32":  tensor.FromFloat32([]int{2, 3}, []float32{0.1, -1e-7, 3.4028235e38, 1e-45, float32(math.Copysign(0, -1)), 123456.79}),
		"f64":  tensor.FromFloat64([]int{2}, []float64{math.Pi, -1e300}),
		"i32":  tensor.FromInt32([]int{1, 2}, []int32{math.MinInt32, math.MaxInt32}),
		"i64":  tensor.FromInt64([]int{2, 1}, []int64{math.MinInt64, math.MaxInt64}),
		"bool": tensor.FromBool([]int{2}, []bool{true, false}),
	}
	var wire InferRequest
	wire.ID = "id \"quoted\"\n\x01"
	for _, name := range []string{"f32", "f64", "i32", "i64", "bool"} {
		ri, err := NewInput(name, in[name])
		if err != nil {
			t.Fatal(err)
		}
		wire.Inputs = append(wire.Inputs, ri)
	}
	body, err := json.Marshal(&wire)
	if err != nil {
		t.Fatal(err)
	}
	req := mustDecode(t, string(body))
	if !reflect.DeepEqual(req.Inputs, in) || req.ID != wire.ID {
		t.Fatalf("round trip:\n%+v\n%+v", req.Inputs, in)
	}

	// The same tensors as a response, decoded by a generic JSON decoder.
	resp := &Response{ModelName: "m\u2028é\xff", ModelVersion: "3", ID: wire.ID, Parameters: Parameters{"p": 1}}
	for _, name := range req.InputOrder {
		resp.Outputs = append(resp.Outputs, Output{Name: name, Tensor: in[name]})
	}
	b, err := AppendInferResponse(nil, resp)
	if err != nil {
		t.Fatal(err)
	}
	var back InferResponse
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("response is not valid JSON: %v\n%s", err, b)
	}
	if back.ModelName != "m\u2028é\ufffd" || back.ModelVersion != "3" || back.ID != wire.ID || back.Parameters["p"] != 1.0 {
		t.Fatalf("envelope: %+v", back)
	}
	got, err := back.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("response round trip:\n%+v\n%+v", got, in)
	}
}

func TestEncodeFP32Shortest(t *testing.T) {
	b, err := AppendInferResponse(nil, &Response{ModelName: "m", Outputs: []Output{
		{Name: "y", Tensor: tensor.FromFloat32([]int{3}, []float32{0.1, 1e6, 2})}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model_name":"m","outputs":[{"name":"y","datatype":"FP32","shape":[3],"data":[0.1,1e+06,2]}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestEncodeRejectsNaN(t *testing.T) {
	_, err := AppendInferResponse(nil, &Response{ModelName: "m", Outputs: []Output{
		{Name: "y", Tensor: tensor.FromFloat32([]int{2}, []float32{1, float32(math.NaN())})}}})
	if err == nil || !strings.Contains(err.Error(), `output "y": value 1 is NaN`) {
		t.Fatalf("err = %v", err)
	}
	_, err = AppendInferResponse(nil, &Response{ModelName: "m", Outputs: []Output{
		{Name: "y", Tensor: tensor.FromFloat32([]int{3}, []float32{1})}}})
	if err == nil {
		t.Fatal("shape/length mismatch accepted")
	}
}

func TestAppendError(t *testing.T) {
	var e Error
	if err := json.Unmarshal(AppendError(nil, "bad \"x\"\n"), &e); err != nil || e.Error != "bad \"x\"\n" {
		t.Fatalf("%v %q", err, e.Error)
	}
}
