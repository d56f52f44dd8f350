package onnx

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Encode serializes a Model as a ModelProto. It writes what Decode reads,
// with repeated numbers packed, so Decode(Encode(m)) round-trips; Bulwark
// uses it to write the sample model it trains.
func Encode(m *Model) []byte {
	var b []byte
	b = appendVarint(b, 1, uint64(m.IRVersion))
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 4, m.Domain)
	if m.ModelVersion != 0 {
		b = appendVarint(b, 5, uint64(m.ModelVersion))
	}
	b = appendString(b, 6, m.DocString)
	if m.Graph != nil {
		b = appendMessage(b, 7, encodeGraph(m.Graph))
	}
	for _, o := range m.OpsetImports {
		var ob []byte
		ob = appendString(ob, 1, o.Domain)
		ob = appendVarint(ob, 2, uint64(o.Version))
		b = appendMessage(b, 8, ob)
	}
	for _, p := range m.Metadata {
		b = appendMessage(b, 14, appendString(appendString(nil, 1, p.Key), 2, p.Value))
	}
	return b
}

func encodeGraph(g *Graph) []byte {
	var b []byte
	for _, n := range g.Nodes {
		b = appendMessage(b, 1, encodeNode(n))
	}
	b = appendString(b, 2, g.Name)
	for _, t := range g.Initializers {
		b = appendMessage(b, 5, EncodeTensor(t))
	}
	b = appendString(b, 10, g.DocString)
	for _, vi := range g.Inputs {
		b = appendMessage(b, 11, encodeValueInfo(vi))
	}
	for _, vi := range g.Outputs {
		b = appendMessage(b, 12, encodeValueInfo(vi))
	}
	for _, vi := range g.ValueInfo {
		b = appendMessage(b, 13, encodeValueInfo(vi))
	}
	return b
}

func encodeNode(n *Node) []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for _, a := range n.Attrs {
		b = appendMessage(b, 5, encodeAttribute(a))
	}
	b = appendString(b, 7, n.Domain)
	return b
}

func encodeAttribute(a *Attribute) []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = appendVarint(b, 3, uint64(a.I))
	case AttrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, a.S)
	case AttrTensor:
		if a.T != nil {
			b = appendMessage(b, 5, EncodeTensor(a.T))
		}
	case AttrFloats:
		b = appendPackedFloats(b, 7, a.Floats)
	case AttrInts:
		b = appendPackedVarints(b, 8, a.Ints)
	case AttrStrings:
		for _, s := range a.Strings {
			b = protowire.AppendTag(b, 9, protowire.BytesType)
			b = protowire.AppendBytes(b, s)
		}
	}
	b = appendVarint(b, 20, uint64(a.Type))
	return b
}

// EncodeTensor serializes a TensorProto.
func EncodeTensor(t *TensorProto) []byte {
	var b []byte
	b = appendPackedVarints(b, 1, t.Dims)
	b = appendVarint(b, 2, uint64(t.DataType))
	if len(t.FloatData) > 0 {
		b = appendPackedFloats(b, 4, t.FloatData)
	}
	if len(t.Int32Data) > 0 {
		v := make([]int64, len(t.Int32Data))
		for i, x := range t.Int32Data {
			v[i] = int64(x)
		}
		b = appendPackedVarints(b, 5, v)
	}
	if len(t.Int64Data) > 0 {
		b = appendPackedVarints(b, 7, t.Int64Data)
	}
	b = appendString(b, 8, t.Name)
	if t.HasRawData || len(t.RawData) > 0 {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, t.RawData)
	}
	if len(t.DoubleData) > 0 {
		b = protowire.AppendTag(b, 10, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(8*len(t.DoubleData)))
		for _, f := range t.DoubleData {
			b = protowire.AppendFixed64(b, math.Float64bits(f))
		}
	}
	return b
}

func encodeValueInfo(vi *ValueInfo) []byte {
	var shape []byte
	for _, d := range vi.Dims {
		var db []byte
		if d.Param != "" {
			db = appendString(db, 2, d.Param)
		} else {
			db = protowire.AppendTag(db, 1, protowire.VarintType)
			db = protowire.AppendVarint(db, uint64(d.Value))
		}
		shape = appendMessage(shape, 1, db)
	}
	var tt []byte
	tt = appendVarint(tt, 1, uint64(vi.ElemType))
	if vi.HasShape || len(vi.Dims) > 0 {
		tt = protowire.AppendTag(tt, 2, protowire.BytesType)
		tt = protowire.AppendBytes(tt, shape)
	}
	var b []byte
	b = appendString(b, 1, vi.Name)
	b = appendMessage(b, 2, appendMessage(nil, 1, tt))
	return b
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func appendPackedVarints(b []byte, num protowire.Number, v []int64) []byte {
	if len(v) == 0 {
		return b
	}
	var p []byte
	for _, x := range v {
		p = protowire.AppendVarint(p, uint64(x))
	}
	return appendMessage(b, num, p)
}

func appendPackedFloats(b []byte, num protowire.Number, v []float32) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(4*len(v)))
	for _, f := range v {
		b = protowire.AppendFixed32(b, math.Float32bits(f))
	}
	return b
}
