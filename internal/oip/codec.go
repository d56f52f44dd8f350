package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Supported lists the datatypes Bulwark can decode, for error messages.
const Supported = "FP32, FP64, INT32, INT64, BOOL"

// protocolTypes are datatypes the protocol defines but Bulwark does not
// serve; naming them separately tells a client its request was well formed
// but asks for something this server cannot do.
var protocolTypes = map[string]bool{
	"UINT8": true, "UINT16": true, "UINT32": true, "UINT64": true,
	"INT8": true, "INT16": true, "FP16": true, "BF16": true, "BYTES": true,
}

// Request is a decoded inference request: tensors ready for a runtime.
type Request struct {
	ID         string
	Parameters Parameters
	// Inputs holds every input by name; InputOrder keeps the request's
	// order for messages and for forwarding.
	Inputs     map[string]*tensor.Tensor
	InputOrder []string
	// Outputs are the requested output names in request order; empty
	// means all of the model's outputs.
	Outputs []string
}

// RequestError is a problem with the client's request. Input names the
// input at fault (empty when the body as a whole is wrong), so the server
// can answer 400 with a message the client can act on.
type RequestError struct {
	Input string
	Msg   string
}

func (e *RequestError) Error() string {
	if e.Input != "" {
		return fmt.Sprintf("input %q: %s", e.Input, e.Msg)
	}
	return e.Msg
}

func inputErr(name, format string, args ...any) *RequestError {
	return &RequestError{Input: name, Msg: fmt.Sprintf(format, args...)}
}

// DecodeInferRequest decodes an OIP inference request body. Every error is
// a *RequestError. Memory use is bounded by len(body): a shape is accepted
// only if the data actually holds that many values.
func DecodeInferRequest(body []byte) (*Request, error) {
	var wire InferRequest
	if err := json.Unmarshal(body, &wire); err != nil {
		return nil, &RequestError{Msg: "malformed request body: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if wire.Inputs == nil {
		return nil, &RequestError{Msg: `request has no "inputs"`}
	}
	req := &Request{
		ID:         wire.ID,
		Parameters: wire.Parameters,
		Inputs:     make(map[string]*tensor.Tensor, len(wire.Inputs)),
		InputOrder: make([]string, 0, len(wire.Inputs)),
	}
	for i := range wire.Inputs {
		in := &wire.Inputs[i]
		if in.Name == "" {
			return nil, &RequestError{Msg: fmt.Sprintf("input %d has no name", i)}
		}
		if _, dup := req.Inputs[in.Name]; dup {
			return nil, inputErr(in.Name, "given more than once")
		}
		t, err := decodeTensor(in.Datatype, in.Shape, in.Data)
		if err != nil {
			return nil, &RequestError{Input: in.Name, Msg: err.Error()}
		}
		req.Inputs[in.Name] = t
		req.InputOrder = append(req.InputOrder, in.Name)
	}
	if len(wire.Outputs) > 0 {
		req.Outputs = make([]string, 0, len(wire.Outputs))
		seen := make(map[string]bool, len(wire.Outputs))
		for i, o := range wire.Outputs {
			if o.Name == "" {
				return nil, &RequestError{Msg: fmt.Sprintf("requested output %d has no name", i)}
			}
			if seen[o.Name] {
				return nil, &RequestError{Msg: fmt.Sprintf("output %q requested more than once", o.Name)}
			}
			seen[o.Name] = true
			req.Outputs = append(req.Outputs, o.Name)
		}
	}
	return req, nil
}

// ParseDatatype maps a protocol datatype name to a DType, telling apart a
// protocol type Bulwark does not serve from a name that is no type at all.
func ParseDatatype(s string) (tensor.DType, error) {
	switch s {
	case "FP32":
		return tensor.Float32, nil
	case "FP64":
		return tensor.Float64, nil
	case "INT32":
		return tensor.Int32, nil
	case "INT64":
		return tensor.Int64, nil
	case "BOOL":
		return tensor.Bool, nil
	case "":
		return tensor.Invalid, fmt.Errorf("missing datatype (supported: %s)", Supported)
	}
	if protocolTypes[s] {
		return tensor.Invalid, fmt.Errorf("datatype %s is not supported (supported: %s)", s, Supported)
	}
	return tensor.Invalid, fmt.Errorf("datatype %q is not an Open Inference Protocol datatype (supported: %s)", s, Supported)
}

// decodeTensor turns one wire tensor (input or output) into a tensor.
func decodeTensor(datatype string, shape []int64, data json.RawMessage) (*tensor.Tensor, error) {
	dt, err := ParseDatatype(datatype)
	if err != nil {
		return nil, err
	}
	if shape == nil {
		return nil, fmt.Errorf("missing shape")
	}
	dims := make([]int, len(shape))
	for i, d := range shape {
		if d < 0 || d > math.MaxInt {
			return nil, fmt.Errorf("shape %s has an invalid dimension %d", shapeString(shape), d)
		}
		dims[i] = int(d)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("missing data")
	}
	return decodeData(dt, dims, data)
}

func shapeString(shape []int64) string {
	dims := make([]int, len(shape))
	for i, d := range shape {
		dims[i] = int(d)
	}
	return tensor.ShapeString(dims)
}

// Tensor decodes the output's data.
func (o *ResponseOutput) Tensor() (*tensor.Tensor, error) {
	t, err := decodeTensor(o.Datatype, o.Shape, o.Data)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", o.Name, err)
	}
	return t, nil
}

// Tensors decodes every output, by name.
func (r *InferResponse) Tensors() (map[string]*tensor.Tensor, error) {
	out := make(map[string]*tensor.Tensor, len(r.Outputs))
	for i := range r.Outputs {
		t, err := r.Outputs[i].Tensor()
		if err != nil {
			return nil, err
		}
		out[r.Outputs[i].Name] = t
	}
	return out, nil
}

// NewInput builds a wire input from a tensor.
func NewInput(name string, t *tensor.Tensor) (RequestInput, error) {
	if err := t.Validate(); err != nil {
		return RequestInput{}, fmt.Errorf("input %q: %w", name, err)
	}
	data, err := appendData(nil, t)
	if err != nil {
		return RequestInput{}, fmt.Errorf("input %q: %w", name, err)
	}
	return RequestInput{Name: name, Shape: shape64(t.Shape), Datatype: t.DType.String(), Data: data}, nil
}

func shape64(shape []int) []int64 {
	s := make([]int64, len(shape))
	for i, d := range shape {
		s[i] = int64(d)
	}
	return s
}
