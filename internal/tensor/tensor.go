package tensor

import (
	"fmt"
	"strings"
)

// DType is an element type. Names follow the Open Inference Protocol.
type DType uint8

// The element types Bulwark serves. Invalid is the zero value so that a
// forgotten DType is caught rather than taken for float32.
const (
	Invalid DType = iota
	Float32
	Float64
	Int32
	Int64
	Bool
)

var dtypeNames = [...]string{Invalid: "INVALID", Float32: "FP32", Float64: "FP64", Int32: "INT32", Int64: "INT64", Bool: "BOOL"}

// String returns the protocol name (FP32, INT64, ...).
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("DType(%d)", d)
}

// ParseDType maps a protocol datatype name to a DType. The error lists the
// supported names so a client knows what to send instead.
func ParseDType(s string) (DType, error) {
	for i, n := range dtypeNames {
		if i != int(Invalid) && n == s {
			return DType(i), nil
		}
	}
	return Invalid, fmt.Errorf("unsupported datatype %q (supported: FP32, FP64, INT32, INT64, BOOL)", s)
}

// Size is the byte width of one element.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float64, Int64:
		return 8
	case Bool:
		return 1
	}
	return 0
}

// Tensor is a dense row-major array. Exactly one of the slices is used, the
// one matching DType; its length equals the product of Shape.
type Tensor struct {
	DType DType
	Shape []int
	F32   []float32
	F64   []float64
	I32   []int32
	I64   []int64
	Bool  []bool
}

// NumElements is the product of the dimensions; 1 for a scalar (empty shape).
// A negative dimension yields -1.
func NumElements(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// New allocates a zero-filled tensor.
func New(dt DType, shape []int) *Tensor {
	t := &Tensor{DType: dt, Shape: append([]int{}, shape...)}
	n := NumElements(shape)
	switch dt {
	case Float32:
		t.F32 = make([]float32, n)
	case Float64:
		t.F64 = make([]float64, n)
	case Int32:
		t.I32 = make([]int32, n)
	case Int64:
		t.I64 = make([]int64, n)
	case Bool:
		t.Bool = make([]bool, n)
	}
	return t
}

// FromFloat32 wraps data (not copied) as a float32 tensor.
func FromFloat32(shape []int, data []float32) *Tensor {
	return &Tensor{DType: Float32, Shape: shape, F32: data}
}

// FromFloat64 wraps data (not copied) as a float64 tensor.
func FromFloat64(shape []int, data []float64) *Tensor {
	return &Tensor{DType: Float64, Shape: shape, F64: data}
}

// FromInt32 wraps data (not copied) as an int32 tensor.
func FromInt32(shape []int, data []int32) *Tensor {
	return &Tensor{DType: Int32, Shape: shape, I32: data}
}

// FromInt64 wraps data (not copied) as an int64 tensor.
func FromInt64(shape []int, data []int64) *Tensor {
	return &Tensor{DType: Int64, Shape: shape, I64: data}
}

// FromBool wraps data (not copied) as a bool tensor.
func FromBool(shape []int, data []bool) *Tensor {
	return &Tensor{DType: Bool, Shape: shape, Bool: data}
}

// Len is the number of elements held in the active slice.
func (t *Tensor) Len() int {
	switch t.DType {
	case Float32:
		return len(t.F32)
	case Float64:
		return len(t.F64)
	case Int32:
		return len(t.I32)
	case Int64:
		return len(t.I64)
	case Bool:
		return len(t.Bool)
	}
	return 0
}

// Validate checks that the DType is known, no dimension is negative and the
// element count matches the shape.
func (t *Tensor) Validate() error {
	if t.DType == Invalid || t.DType.Size() == 0 {
		return fmt.Errorf("invalid datatype %v", t.DType)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", t.Shape)
		}
	}
	if n := NumElements(t.Shape); n != t.Len() {
		return fmt.Errorf("shape %v needs %d elements, have %d", t.Shape, n, t.Len())
	}
	return nil
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	c := &Tensor{DType: t.DType, Shape: append([]int{}, t.Shape...)}
	c.F32 = cloneSlice(t.F32)
	c.F64 = cloneSlice(t.F64)
	c.I32 = cloneSlice(t.I32)
	c.I64 = cloneSlice(t.I64)
	c.Bool = cloneSlice(t.Bool)
	return c
}

// Reshaped returns a tensor sharing t's data with a new shape. The caller
// guarantees the element count matches.
func (t *Tensor) Reshaped(shape []int) *Tensor {
	c := *t
	c.Shape = append([]int{}, shape...)
	return &c
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

// ShapeString formats a shape as [2,3,-1].
func ShapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// ShapeMatches reports whether a concrete shape fits a signature shape in
// which -1 stands for any size.
func ShapeMatches(sig, shape []int) bool {
	if len(sig) != len(shape) {
		return false
	}
	for i, d := range sig {
		if d >= 0 && d != shape[i] {
			return false
		}
	}
	return true
}

// Float64At returns element i converted to float64, whatever the DType. It
// is for comparisons and tests, not hot loops.
func (t *Tensor) Float64At(i int) float64 {
	switch t.DType {
	case Float32:
		return float64(t.F32[i])
	case Float64:
		return t.F64[i]
	case Int32:
		return float64(t.I32[i])
	case Int64:
		return float64(t.I64[i])
	case Bool:
		if t.Bool[i] {
			return 1
		}
	}
	return 0
}
