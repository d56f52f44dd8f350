package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// maxElements bounds a single tensor (2^31 elements) so a hostile header
// cannot ask for an absurd allocation.
const maxElements = 1 << 31

// DTypeOf maps an ONNX element type to a Bulwark DType.
func DTypeOf(d DataType) (tensor.DType, error) {
	switch d {
	case DataFloat:
		return tensor.Float32, nil
	case DataDouble:
		return tensor.Float64, nil
	case DataInt32:
		return tensor.Int32, nil
	case DataInt64:
		return tensor.Int64, nil
	case DataBool:
		return tensor.Bool, nil
	}
	return tensor.Invalid, fmt.Errorf("unsupported ONNX data type %v", d)
}

// DataTypeOf maps a Bulwark DType to the ONNX element type.
func DataTypeOf(d tensor.DType) DataType {
	switch d {
	case tensor.Float32:
		return DataFloat
	case tensor.Float64:
		return DataDouble
	case tensor.Int32:
		return DataInt32
	case tensor.Int64:
		return DataInt64
	case tensor.Bool:
		return DataBool
	}
	return DataUndefined
}

// ToTensor converts a TensorProto to a tensor, copying its data. Raw data is
// little-endian as the ONNX spec requires. External data is refused: a model
// in the store is one self-contained file.
func ToTensor(tp *TensorProto) (*tensor.Tensor, error) {
	dt, shape, err := tensorHeader(tp)
	if err != nil {
		return nil, err
	}
	if tp.HasRawData {
		return fromRaw(dt, shape, tp.RawData), nil
	}
	t := tensor.New(dt, shape)
	switch tp.DataType {
	case DataFloat:
		copy(t.F32, tp.FloatData)
	case DataDouble:
		copy(t.F64, tp.DoubleData)
	case DataInt64:
		copy(t.I64, tp.Int64Data)
	case DataInt32:
		copy(t.I32, tp.Int32Data)
	case DataBool:
		// The spec stores bools in int32_data.
		for i, v := range tp.Int32Data {
			t.Bool[i] = v != 0
		}
	}
	return t, nil
}

// CheckTensor reports the error ToTensor would return, without converting
// (or allocating) the data, so a caller can validate every tensor of a
// model up front and convert each one only when it needs it.
func CheckTensor(tp *TensorProto) error {
	_, _, err := tensorHeader(tp)
	return err
}

// tensorHeader validates a TensorProto (type, dimensions, amount of data)
// and returns its datatype and shape.
func tensorHeader(tp *TensorProto) (tensor.DType, []int, error) {
	dt, err := DTypeOf(tp.DataType)
	if err != nil {
		return dt, nil, fmt.Errorf("tensor %q: %w", tp.Name, err)
	}
	if tp.External {
		return dt, nil, fmt.Errorf("tensor %q: external data is not supported; save the model as one file", tp.Name)
	}
	shape := make([]int, len(tp.Dims))
	n := int64(1)
	for i, d := range tp.Dims {
		if d < 0 {
			return dt, nil, fmt.Errorf("tensor %q: negative dimension %d", tp.Name, d)
		}
		if d > 0 && n > maxElements/d {
			return dt, nil, fmt.Errorf("tensor %q: too many elements", tp.Name)
		}
		n *= d
		shape[i] = int(d)
	}
	count := int(n)
	if tp.HasRawData {
		if len(tp.RawData) != count*dt.Size() {
			return dt, nil, fmt.Errorf("tensor %q: raw data has %d bytes, shape %v of %v needs %d",
				tp.Name, len(tp.RawData), shape, dt, count*dt.Size())
		}
		return dt, shape, nil
	}
	var have int
	switch tp.DataType {
	case DataFloat:
		have = len(tp.FloatData)
	case DataDouble:
		have = len(tp.DoubleData)
	case DataInt64:
		have = len(tp.Int64Data)
	case DataInt32, DataBool:
		have = len(tp.Int32Data)
	}
	if have != count {
		return dt, nil, fmt.Errorf("tensor %q: has %d values, shape %v needs %d", tp.Name, have, shape, count)
	}
	return dt, shape, nil
}

// DecodeFloats fills dst with little-endian float32 or float64 values (by
// T) from raw, as ToTensor reads raw data; raw must hold at least len(dst)
// values. It lets a caller convert part of a large tensor's RawData at a
// time, straight into the layout it needs.
func DecodeFloats[T float32 | float64](dst []T, raw []byte) {
	le := binary.LittleEndian
	switch d := any(dst).(type) {
	case []float32:
		raw = raw[:4*len(d)]
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case []float64:
		raw = raw[:8*len(d)]
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	}
}

func fromRaw(dt tensor.DType, shape []int, raw []byte) *tensor.Tensor {
	t := tensor.New(dt, shape)
	le := binary.LittleEndian
	switch dt {
	case tensor.Float32:
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case tensor.Float64:
		for i := range t.F64 {
			t.F64[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	case tensor.Int32:
		for i := range t.I32 {
			t.I32[i] = int32(le.Uint32(raw[4*i:]))
		}
	case tensor.Int64:
		for i := range t.I64 {
			t.I64[i] = int64(le.Uint64(raw[8*i:]))
		}
	case tensor.Bool:
		for i := range t.Bool {
			t.Bool[i] = raw[i] != 0
		}
	}
	return t
}

// FromTensor converts a tensor to a TensorProto with raw little-endian data.
func FromTensor(name string, t *tensor.Tensor) *TensorProto {
	tp := &TensorProto{Name: name, DataType: DataTypeOf(t.DType), HasRawData: true}
	for _, d := range t.Shape {
		tp.Dims = append(tp.Dims, int64(d))
	}
	le := binary.LittleEndian
	raw := make([]byte, 0, t.Len()*t.DType.Size())
	switch t.DType {
	case tensor.Float32:
		for _, v := range t.F32 {
			raw = le.AppendUint32(raw, math.Float32bits(v))
		}
	case tensor.Float64:
		for _, v := range t.F64 {
			raw = le.AppendUint64(raw, math.Float64bits(v))
		}
	case tensor.Int32:
		for _, v := range t.I32 {
			raw = le.AppendUint32(raw, uint32(v))
		}
	case tensor.Int64:
		for _, v := range t.I64 {
			raw = le.AppendUint64(raw, uint64(v))
		}
	case tensor.Bool:
		for _, v := range t.Bool {
			b := byte(0)
			if v {
				b = 1
			}
			raw = append(raw, b)
		}
	}
	tp.RawData = raw
	return tp
}
