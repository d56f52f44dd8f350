package onnx

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxDepth bounds nesting (attributes hold tensors, graphs hold nodes) so a
// hostile file cannot exhaust the stack.
const maxDepth = 16

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed ONNX model")

// Decode parses a serialized ModelProto. Byte fields of the result
// (TensorProto.RawData, Attribute.S and Strings) alias b rather than copy
// it, so decoding a large model costs no second copy of its weights; b
// must not be modified while the model is in use, and stays reachable as
// long as any of those fields is.
func Decode(b []byte) (*Model, error) {
	m := &Model{}
	err := each(b, func(num protowire.Number, typ protowire.Type, v field) error {
		switch num {
		case 1:
			m.IRVersion = int64(v.u)
		case 2:
			m.ProducerName = string(v.b)
		case 3:
			m.ProducerVersion = string(v.b)
		case 4:
			m.Domain = string(v.b)
		case 5:
			m.ModelVersion = int64(v.u)
		case 6:
			m.DocString = string(v.b)
		case 7:
			if typ != protowire.BytesType {
				return wrongType("graph")
			}
			g, err := decodeGraph(v.b, 1)
			if err != nil {
				return fmt.Errorf("graph: %w", err)
			}
			m.Graph = g
		case 8:
			if typ != protowire.BytesType {
				return wrongType("opset_import")
			}
			var o OpsetID
			if err := each(v.b, func(n protowire.Number, _ protowire.Type, f field) error {
				switch n {
				case 1:
					o.Domain = string(f.b)
				case 2:
					o.Version = int64(f.u)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("opset_import: %w", err)
			}
			m.OpsetImports = append(m.OpsetImports, o)
		case 14:
			p, err := decodePair(v.b)
			if err != nil {
				return fmt.Errorf("metadata_props: %w", err)
			}
			m.Metadata = append(m.Metadata, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if m.Graph == nil {
		return nil, fmt.Errorf("%w: no graph", ErrMalformed)
	}
	return m, nil
}

// field is one decoded wire value: u for varint/fixed, b for bytes.
type field struct {
	u uint64
	b []byte
}

// each walks the fields of one message, calling fn for every field.
func each(b []byte, fn func(protowire.Number, protowire.Type, field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: bad tag: %v", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		var f field
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, f); err != nil {
			return err
		}
	}
	return nil
}

func wrongType(name string) error {
	return fmt.Errorf("%w: field %s has the wrong wire type", ErrMalformed, name)
}

func decodePair(b []byte) (StringPair, error) {
	var p StringPair
	err := each(b, func(n protowire.Number, _ protowire.Type, f field) error {
		switch n {
		case 1:
			p.Key = string(f.b)
		case 2:
			p.Value = string(f.b)
		}
		return nil
	})
	return p, err
}

func decodeGraph(b []byte, depth int) (*Graph, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested too deeply", ErrMalformed)
	}
	g := &Graph{}
	err := each(b, func(num protowire.Number, typ protowire.Type, v field) error {
		if num != 2 && num != 10 && typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			n, err := decodeNode(v.b, depth+1)
			if err != nil {
				return fmt.Errorf("node %d: %w", len(g.Nodes), err)
			}
			g.Nodes = append(g.Nodes, n)
		case 2:
			g.Name = string(v.b)
		case 5:
			t, err := decodeTensor(v.b)
			if err != nil {
				return fmt.Errorf("initializer %d: %w", len(g.Initializers), err)
			}
			g.Initializers = append(g.Initializers, t)
		case 10:
			g.DocString = string(v.b)
		case 11, 12, 13:
			vi, err := decodeValueInfo(v.b)
			if err != nil {
				return fmt.Errorf("value info: %w", err)
			}
			switch num {
			case 11:
				g.Inputs = append(g.Inputs, vi)
			case 12:
				g.Outputs = append(g.Outputs, vi)
			default:
				g.ValueInfo = append(g.ValueInfo, vi)
			}
		}
		return nil
	})
	return g, err
}

func decodeNode(b []byte, depth int) (*Node, error) {
	n := &Node{}
	err := each(b, func(num protowire.Number, typ protowire.Type, v field) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			n.Inputs = append(n.Inputs, string(v.b))
		case 2:
			n.Outputs = append(n.Outputs, string(v.b))
		case 3:
			n.Name = string(v.b)
		case 4:
			n.OpType = string(v.b)
		case 5:
			a, err := decodeAttribute(v.b, depth+1)
			if err != nil {
				return fmt.Errorf("attribute: %w", err)
			}
			n.Attrs = append(n.Attrs, a)
		case 7:
			n.Domain = string(v.b)
		}
		return nil
	})
	return n, err
}

func decodeAttribute(b []byte, depth int) (*Attribute, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested too deeply", ErrMalformed)
	}
	a := &Attribute{}
	err := each(b, func(num protowire.Number, typ protowire.Type, v field) error {
		switch num {
		case 1:
			a.Name = string(v.b)
		case 20:
			a.Type = AttrType(int32(v.u))
		case 2:
			a.F = math.Float32frombits(uint32(v.u))
		case 3:
			a.I = int64(v.u)
		case 4:
			a.S = v.b
		case 5:
			t, err := decodeTensor(v.b)
			if err != nil {
				return fmt.Errorf("tensor: %w", err)
			}
			a.T = t
		case 6, 11:
			a.HasGraph = true
		case 7:
			return appendFloats(&a.Floats, typ, v)
		case 8:
			return appendVarints(&a.Ints, typ, v, func(u uint64) int64 { return int64(u) })
		case 9:
			a.Strings = append(a.Strings, v.b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func decodeTensor(b []byte) (*TensorProto, error) {
	t := &TensorProto{}
	err := each(b, func(num protowire.Number, typ protowire.Type, v field) error {
		switch num {
		case 1:
			return appendVarints(&t.Dims, typ, v, func(u uint64) int64 { return int64(u) })
		case 2:
			t.DataType = DataType(int32(v.u))
		case 4:
			return appendFloats(&t.FloatData, typ, v)
		case 5:
			return appendVarints(&t.Int32Data, typ, v, func(u uint64) int32 { return int32(u) })
		case 6:
			t.StringCount++
		case 7:
			return appendVarints(&t.Int64Data, typ, v, func(u uint64) int64 { return int64(u) })
		case 8:
			t.Name = string(v.b)
		case 9:
			t.RawData = v.b // aliases the input: no copy
			t.HasRawData = true
		case 10:
			return appendDoubles(&t.DoubleData, typ, v)
		case 11:
			return appendVarints(&t.Uint64Data, typ, v, func(u uint64) uint64 { return u })
		case 13:
			p, err := decodePair(v.b)
			if err != nil {
				return err
			}
			t.ExternalData = append(t.ExternalData, p)
		case 14:
			t.External = v.u == 1
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func decodeValueInfo(b []byte) (*ValueInfo, error) {
	vi := &ValueInfo{}
	err := each(b, func(num protowire.Number, _ protowire.Type, v field) error {
		switch num {
		case 1:
			vi.Name = string(v.b)
		case 2:
			return decodeType(v.b, vi)
		}
		return nil
	})
	return vi, err
}

// decodeType reads TypeProto; only tensor types are described, others are
// flagged so the runtime can refuse them by name.
func decodeType(b []byte, vi *ValueInfo) error {
	return each(b, func(num protowire.Number, _ protowire.Type, v field) error {
		switch num {
		case 1:
			return each(v.b, func(n protowire.Number, _ protowire.Type, f field) error {
				switch n {
				case 1:
					vi.ElemType = DataType(int32(f.u))
				case 2:
					vi.HasShape = true
					return each(f.b, func(n protowire.Number, _ protowire.Type, f field) error {
						if n != 1 {
							return nil
						}
						var d Dim
						err := each(f.b, func(n protowire.Number, _ protowire.Type, f field) error {
							switch n {
							case 1:
								d.Value, d.HasValue = int64(f.u), true
							case 2:
								d.Param = string(f.b)
							}
							return nil
						})
						vi.Dims = append(vi.Dims, d)
						return err
					})
				}
				return nil
			})
		case 4, 5, 8, 9:
			vi.NotTensor = true
		}
		return nil
	})
}

// appendVarints accepts both packed and unpacked encodings of a repeated
// varint field, as protobuf parsers must.
func appendVarints[T any](dst *[]T, typ protowire.Type, v field, conv func(uint64) T) error {
	if typ == protowire.VarintType {
		*dst = append(*dst, conv(v.u))
		return nil
	}
	if typ != protowire.BytesType {
		return fmt.Errorf("%w: repeated varint with wire type %d", ErrMalformed, typ)
	}
	b := v.b
	for len(b) > 0 {
		u, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return fmt.Errorf("%w: packed varint: %v", ErrMalformed, protowire.ParseError(n))
		}
		*dst = append(*dst, conv(u))
		b = b[n:]
	}
	return nil
}

func appendFloats(dst *[]float32, typ protowire.Type, v field) error {
	switch typ {
	case protowire.Fixed32Type:
		*dst = append(*dst, math.Float32frombits(uint32(v.u)))
		return nil
	case protowire.BytesType:
		if len(v.b)%4 != 0 {
			return fmt.Errorf("%w: packed floats of %d bytes", ErrMalformed, len(v.b))
		}
		for i := 0; i < len(v.b); i += 4 {
			u, _ := protowire.ConsumeFixed32(v.b[i:])
			*dst = append(*dst, math.Float32frombits(u))
		}
		return nil
	}
	return fmt.Errorf("%w: repeated float with wire type %d", ErrMalformed, typ)
}

func appendDoubles(dst *[]float64, typ protowire.Type, v field) error {
	switch typ {
	case protowire.Fixed64Type:
		*dst = append(*dst, math.Float64frombits(v.u))
		return nil
	case protowire.BytesType:
		if len(v.b)%8 != 0 {
			return fmt.Errorf("%w: packed doubles of %d bytes", ErrMalformed, len(v.b))
		}
		for i := 0; i < len(v.b); i += 8 {
			u, _ := protowire.ConsumeFixed64(v.b[i:])
			*dst = append(*dst, math.Float64frombits(u))
		}
		return nil
	}
	return fmt.Errorf("%w: repeated double with wire type %d", ErrMalformed, typ)
}
