package oip

import (
	"reflect"
	"testing"
)

func FuzzDecodeInferRequest(f *testing.F) {
	seeds := []string{
		`{"id":"1","inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,4.5e-3]]}],"outputs":[{"name":"y"}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3,4]}]}`,
		`{"inputs":[{"name":"a","datatype":"INT64","shape":[1,2,1],"data":[[[-9223372036854775808],[9]]]},{"name":"b","datatype":"BOOL","shape":[],"data":[true]}]}`,
		`{"inputs":[{"name":"x","datatype":"INT32","shape":[0,3],"data":[]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP64","shape":[2,0],"data":[[],[]]}]}`,
		`{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["a"]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[99999999999,99999999999],"data":[1]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[[1],[2]]}]}`,
		`{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1.5]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1e39]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[2,1],"data":[[1],2]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[null]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":1}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`,
		`{"inputs":[`,
		``,
		`null`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeInferRequest(body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error %T is not a *RequestError", err)
			}
			return
		}
		if len(req.Inputs) != len(req.InputOrder) {
			t.Fatalf("%d inputs, %d in order", len(req.Inputs), len(req.InputOrder))
		}
		// Whatever was accepted is a valid tensor and survives a round trip
		// through the encoder.
		for _, name := range req.InputOrder {
			x := req.Inputs[name]
			if err := x.Validate(); err != nil {
				t.Fatalf("input %q: decoded an invalid tensor: %v", name, err)
			}
			if x.Len() > len(body) {
				t.Fatalf("input %q: %d elements from a %d-byte body", name, x.Len(), len(body))
			}
			in, err := NewInput(name, x)
			if err != nil {
				t.Fatalf("input %q: re-encode: %v", name, err)
			}
			back, err := decodeTensor(in.Datatype, in.Shape, in.Data)
			if err != nil {
				t.Fatalf("input %q: decode re-encoded %s: %v", name, in.Data, err)
			}
			if !reflect.DeepEqual(back, x) {
				t.Fatalf("input %q: round trip changed %+v to %+v", name, x, back)
			}
		}
	})
}
