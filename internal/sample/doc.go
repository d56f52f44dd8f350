// Package sample makes the demo model that `bulwark sample` and `bulwark up`
// serve: a small classifier trained in Go, on a generated data set, and
// written as a standard ONNX file, so the demo needs no download and the file
// loads in onnxruntime as well as in Bulwark.
//
// The data set has the shape of Fisher's iris data: four measurements
// (sepal length and width, petal length and width, in cm) of three species,
// drawn from normal distributions around each species' published means. The
// model is a two-layer perceptron: Gemm → Relu → Gemm → Softmax, plus an
// ArgMax giving the predicted class index.
package sample
