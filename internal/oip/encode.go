package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Output is one output tensor of a response being encoded.
type Output struct {
	Name       string
	Tensor     *tensor.Tensor
	Parameters Parameters
}

// Response is an inference result to encode with AppendInferResponse.
type Response struct {
	ModelName    string
	ModelVersion string
	ID           string
	Parameters   Parameters
	Outputs      []Output
}

// AppendInferResponse appends r as an OIP inference response body to dst.
// Data is written flat (the shape carries the structure), FP32 in the
// shortest form that reads back as the same float32. NaN and infinities
// have no JSON form: they are an error rather than a silently changed value.
func AppendInferResponse(dst []byte, r *Response) ([]byte, error) {
	var err error
	dst = append(dst, `{"model_name":`...)
	dst = appendString(dst, r.ModelName)
	if r.ModelVersion != "" {
		dst = append(dst, `,"model_version":`...)
		dst = appendString(dst, r.ModelVersion)
	}
	if r.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, r.ID)
	}
	if dst, err = appendParameters(dst, r.Parameters); err != nil {
		return dst, err
	}
	dst = append(dst, `,"outputs":[`...)
	for i, o := range r.Outputs {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = appendOutput(dst, &o); err != nil {
			return dst, err
		}
	}
	return append(dst, "]}"...), nil
}

func appendOutput(dst []byte, o *Output) ([]byte, error) {
	t := o.Tensor
	if t == nil {
		return dst, fmt.Errorf("output %q: no tensor", o.Name)
	}
	if err := t.Validate(); err != nil {
		return dst, fmt.Errorf("output %q: %w", o.Name, err)
	}
	dst = append(dst, `{"name":`...)
	dst = appendString(dst, o.Name)
	dst = append(dst, `,"datatype":"`...)
	dst = append(dst, t.DType.String()...)
	dst = append(dst, `","shape":[`...)
	for i, d := range t.Shape {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, int64(d), 10)
	}
	dst = append(dst, ']')
	var err error
	if dst, err = appendParameters(dst, o.Parameters); err != nil {
		return dst, err
	}
	dst = append(dst, `,"data":`...)
	if dst, err = appendData(dst, t); err != nil {
		return dst, fmt.Errorf("output %q: %w", o.Name, err)
	}
	return append(dst, '}'), nil
}

func appendParameters(dst []byte, p Parameters) ([]byte, error) {
	if len(p) == 0 {
		return dst, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return dst, fmt.Errorf("parameters: %w", err)
	}
	dst = append(dst, `,"parameters":`...)
	return append(dst, b...), nil
}

// appendData appends t's elements as a flat JSON array.
func appendData(dst []byte, t *tensor.Tensor) ([]byte, error) {
	dst = append(dst, '[')
	switch t.DType {
	case tensor.Float32:
		for i, v := range t.F32 {
			if i > 0 {
				dst = append(dst, ',')
			}
			f := float64(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return dst, fmt.Errorf("value %d is %v, which JSON cannot represent", i, v)
			}
			dst = strconv.AppendFloat(dst, f, 'g', -1, 32)
		}
	case tensor.Float64:
		for i, v := range t.F64 {
			if i > 0 {
				dst = append(dst, ',')
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return dst, fmt.Errorf("value %d is %v, which JSON cannot represent", i, v)
			}
			dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
		}
	case tensor.Int32:
		for i, v := range t.I32 {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, int64(v), 10)
		}
	case tensor.Int64:
		for i, v := range t.I64 {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, v, 10)
		}
	case tensor.Bool:
		for i, v := range t.Bool {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendBool(dst, v)
		}
	default:
		return dst, fmt.Errorf("datatype %v cannot be encoded", t.DType)
	}
	return append(dst, ']'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does, so the output is always valid JSON.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendError appends an {"error": msg} body.
func AppendError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":`...)
	dst = appendString(dst, msg)
	return append(dst, '}')
}
