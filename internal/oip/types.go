package oip

import "encoding/json"

// Parameters is the protocol's free-form "parameters" object.
type Parameters map[string]any

// ServerMetadata is the body of GET /v2.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// TensorMetadata describes one model input or output. A -1 dimension
// accepts any size.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelMetadata is the body of GET /v2/models/{m}[/versions/{v}].
// Parameters is a Bulwark extension (the protocol's metadata has none): the
// node puts the described version and, for a version that failed to load,
// its readiness and the reason there.
type ModelMetadata struct {
	Name       string           `json:"name"`
	Versions   []string         `json:"versions,omitempty"`
	Platform   string           `json:"platform"`
	Inputs     []TensorMetadata `json:"inputs"`
	Outputs    []TensorMetadata `json:"outputs"`
	Parameters Parameters       `json:"parameters,omitempty"`
}

// InferRequest is the body of POST .../infer as it travels on the wire.
// Data stays raw so the codec, not reflection, decides how to read it; use
// NewInput to build inputs from tensors and DecodeInferRequest to get
// tensors back.
type InferRequest struct {
	ID         string          `json:"id,omitempty"`
	Parameters Parameters      `json:"parameters,omitempty"`
	Inputs     []RequestInput  `json:"inputs"`
	Outputs    []RequestOutput `json:"outputs,omitempty"`
}

// RequestInput is one input tensor of an InferRequest.
type RequestInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters Parameters      `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

// RequestOutput names an output the client wants; none means all.
type RequestOutput struct {
	Name       string     `json:"name"`
	Parameters Parameters `json:"parameters,omitempty"`
}

// InferResponse is the body of a successful inference as it travels on the
// wire. Use Tensors or ResponseOutput.Tensor to decode the outputs.
type InferResponse struct {
	ModelName    string           `json:"model_name"`
	ModelVersion string           `json:"model_version,omitempty"`
	ID           string           `json:"id,omitempty"`
	Parameters   Parameters       `json:"parameters,omitempty"`
	Outputs      []ResponseOutput `json:"outputs"`
}

// ResponseOutput is one output tensor of an InferResponse.
type ResponseOutput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters Parameters      `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
}
