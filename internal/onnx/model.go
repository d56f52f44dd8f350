package onnx

import "strconv"

// Model is a decoded ModelProto.
type Model struct {
	IRVersion       int64
	OpsetImports    []OpsetID
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	Graph           *Graph
	Metadata        []StringPair
}

// OpsetID names an operator set and its version. The empty domain and
// "ai.onnx" both mean the default ONNX operator set.
type OpsetID struct {
	Domain  string
	Version int64
}

// StringPair is a StringStringEntryProto.
type StringPair struct{ Key, Value string }

// Graph is a decoded GraphProto.
type Graph struct {
	Name         string
	Nodes        []*Node
	Initializers []*TensorProto
	Inputs       []*ValueInfo
	Outputs      []*ValueInfo
	ValueInfo    []*ValueInfo
	DocString    string
}

// Node is one operator application.
type Node struct {
	Name    string
	OpType  string
	Domain  string
	Inputs  []string
	Outputs []string
	Attrs   []*Attribute
}

// AttrType is AttributeProto.AttributeType.
type AttrType int32

// Attribute types used by the operators Bulwark supports.
const (
	AttrUndefined AttrType = 0
	AttrFloat     AttrType = 1
	AttrInt       AttrType = 2
	AttrString    AttrType = 3
	AttrTensor    AttrType = 4
	AttrGraph     AttrType = 5
	AttrFloats    AttrType = 6
	AttrInts      AttrType = 7
	AttrStrings   AttrType = 8
	AttrTensors   AttrType = 9
	AttrGraphs    AttrType = 10
)

// Attribute is a decoded AttributeProto. Graph-valued attributes are kept
// as a flag only: no supported operator takes a subgraph.
type Attribute struct {
	Name     string
	Type     AttrType
	F        float32
	I        int64
	S        []byte
	T        *TensorProto
	Floats   []float32
	Ints     []int64
	Strings  [][]byte
	HasGraph bool
}

// DataType is TensorProto.DataType.
type DataType int32

// ONNX element types.
const (
	DataUndefined DataType = 0
	DataFloat     DataType = 1
	DataUint8     DataType = 2
	DataInt8      DataType = 3
	DataUint16    DataType = 4
	DataInt16     DataType = 5
	DataInt32     DataType = 6
	DataInt64     DataType = 7
	DataString    DataType = 8
	DataBool      DataType = 9
	DataFloat16   DataType = 10
	DataDouble    DataType = 11
	DataUint32    DataType = 12
	DataUint64    DataType = 13
)

var dataTypeNames = map[DataType]string{
	DataUndefined: "UNDEFINED", DataFloat: "FLOAT", DataUint8: "UINT8", DataInt8: "INT8",
	DataUint16: "UINT16", DataInt16: "INT16", DataInt32: "INT32", DataInt64: "INT64",
	DataString: "STRING", DataBool: "BOOL", DataFloat16: "FLOAT16", DataDouble: "DOUBLE",
	DataUint32: "UINT32", DataUint64: "UINT64",
}

func (d DataType) String() string {
	if n, ok := dataTypeNames[d]; ok {
		return n
	}
	return "DATATYPE_" + strconv.Itoa(int(d))
}

// TensorProto is a decoded TensorProto. Values stay in whichever field the
// producer used; ToTensor normalises them.
type TensorProto struct {
	Name         string
	Dims         []int64
	DataType     DataType
	FloatData    []float32
	Int32Data    []int32
	Int64Data    []int64
	DoubleData   []float64
	Uint64Data   []uint64
	RawData      []byte
	External     bool // data_location == EXTERNAL
	HasRawData   bool
	StringCount  int
	ExternalData []StringPair
}

// ValueInfo is a graph input, output or intermediate value with its type.
type ValueInfo struct {
	Name     string
	ElemType DataType
	HasShape bool
	Dims     []Dim
	// NotTensor is set when the type is a sequence, map or other non-tensor.
	NotTensor bool
}

// Dim is one dimension of a ValueInfo shape: a fixed size, or a symbolic
// (dynamic) one when Param is set or Value is unset.
type Dim struct {
	Value    int64
	HasValue bool
	Param    string
}
