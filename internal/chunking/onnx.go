package chunking

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the ONNX protobuf messages that lead to tensor bytes.
const (
	modelIRVersion = 1
	modelGraph     = 7

	graphNode              = 1
	graphInitializer       = 5
	graphSparseInitializer = 15

	nodeAttribute = 5

	attrTensor  = 5
	attrGraph   = 6
	attrTensors = 10
	attrGraphs  = 11

	sparseValues  = 1
	sparseIndices = 2

	tensorFloatData  = 4
	tensorInt32Data  = 5
	tensorInt64Data  = 7
	tensorRawData    = 9
	tensorDoubleData = 10
	tensorUint64Data = 11
)

// maxGraphDepth bounds the recursion into subgraphs (If, Loop, Scan
// bodies), so a hostile file cannot exhaust the stack.
const maxGraphDepth = 16

// modelFieldTypes are the wire types of the ModelProto fields that every
// writer uses; a file whose top level disagrees is not ONNX.
var modelFieldTypes = map[protowire.Number]protowire.Type{
	1: protowire.VarintType, 2: protowire.BytesType, 3: protowire.BytesType,
	4: protowire.BytesType, 5: protowire.VarintType, 6: protowire.BytesType,
	7: protowire.BytesType, 8: protowire.BytesType, 14: protowire.BytesType,
	20: protowire.BytesType, 25: protowire.BytesType,
}

// onnxBoundaries walks ModelProto -> graph -> initializers (and tensors in
// node attributes, sparse initializers and subgraphs) reading only tags and
// lengths, and returns the start and end of every tensor's data payload:
// raw_data, or a packed numeric field.
func onnxBoundaries(cur *cursor) ([]int64, error) {
	var out []int64
	sawVersion, sawGraph := false, false
	err := walkMessage(cur, 0, cur.size, func(f field) error {
		if want, ok := modelFieldTypes[f.num]; ok && f.typ != want {
			return malformed("model field %d has wire type %d, want %d", f.num, f.typ, want)
		}
		switch f.num {
		case modelIRVersion:
			sawVersion = true
		case modelGraph:
			sawGraph = true
			return graphBoundaries(cur, f, 0, &out)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !sawVersion || !sawGraph {
		return nil, malformed("not an ONNX model: no ir_version or graph")
	}
	return out, nil
}

func graphBoundaries(cur *cursor, g field, depth int, out *[]int64) error {
	if depth > maxGraphDepth {
		return malformed("subgraphs nested deeper than %d", maxGraphDepth)
	}
	return walkMessage(cur, g.start, g.end, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case graphInitializer:
			return tensorBoundaries(cur, f, out)
		case graphSparseInitializer:
			return walkMessage(cur, f.start, f.end, func(s field) error {
				if s.typ == protowire.BytesType && (s.num == sparseValues || s.num == sparseIndices) {
					return tensorBoundaries(cur, s, out)
				}
				return nil
			})
		case graphNode:
			return walkMessage(cur, f.start, f.end, func(n field) error {
				if n.typ == protowire.BytesType && n.num == nodeAttribute {
					return attributeBoundaries(cur, n, depth, out)
				}
				return nil
			})
		}
		return nil
	})
}

func attributeBoundaries(cur *cursor, a field, depth int, out *[]int64) error {
	return walkMessage(cur, a.start, a.end, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case attrTensor, attrTensors:
			return tensorBoundaries(cur, f, out)
		case attrGraph, attrGraphs:
			return graphBoundaries(cur, f, depth+1, out)
		}
		return nil
	})
}

func tensorBoundaries(cur *cursor, t field, out *[]int64) error {
	return walkMessage(cur, t.start, t.end, func(f field) error {
		if f.typ != protowire.BytesType || f.end == f.start {
			return nil
		}
		switch f.num {
		case tensorRawData, tensorFloatData, tensorInt32Data, tensorInt64Data, tensorDoubleData, tensorUint64Data:
			if len(*out) >= 2*maxTensors {
				return malformed("more than %d tensors", maxTensors)
			}
			*out = append(*out, f.start, f.end)
		}
		return nil
	})
}

// field is one protobuf field; for length-delimited fields [start,end) is
// its payload.
type field struct {
	num        protowire.Number
	typ        protowire.Type
	start, end int64
}

// walkMessage calls fn for each field of the message in [start,end) of the
// file, reading tags and lengths and skipping payloads.
func walkMessage(cur *cursor, start, end int64, fn func(field) error) error {
	pos := start
	for pos < end {
		tag, n, err := readVarint(cur, pos, end)
		if err != nil {
			return err
		}
		num, typ := protowire.DecodeTag(tag)
		if !num.IsValid() {
			return malformed("invalid field number %d at offset %d", num, pos)
		}
		pos += int64(n)
		f := field{num: num, typ: typ, start: pos}
		switch typ {
		case protowire.VarintType:
			_, n, err := readVarint(cur, pos, end)
			if err != nil {
				return err
			}
			pos += int64(n)
		case protowire.Fixed32Type:
			pos += 4
		case protowire.Fixed64Type:
			pos += 8
		case protowire.BytesType:
			length, n, err := readVarint(cur, pos, end)
			if err != nil {
				return err
			}
			pos += int64(n)
			if length > uint64(end-pos) {
				return malformed("field %d at offset %d: length %d runs past its message", num, f.start, length)
			}
			f.start = pos
			pos += int64(length)
		default:
			return malformed("field %d at offset %d: unsupported wire type %d", num, f.start, typ)
		}
		if pos > end {
			return malformed("field %d at offset %d runs past its message", num, f.start)
		}
		f.end = pos
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func readVarint(cur *cursor, pos, end int64) (uint64, int, error) {
	b, err := cur.peek(pos, protowire.SizeVarint(1<<63))
	if err != nil {
		return 0, 0, err
	}
	if rest := end - pos; int64(len(b)) > rest {
		b = b[:rest]
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, malformed("bad varint at offset %d", pos)
	}
	return v, n, nil
}
