package builtin

import (
	"fmt"
	"math"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func init() { register("BatchNormalization", newBatchNorm) }

// newBatchNorm builds inference-mode batch normalization,
// y = (x-mean)/sqrt(var+eps)*scale + B, folded to y = x*a + b per channel.
// With constant statistics (the usual case) a and b are computed once here.
func newBatchNorm(n *nodeInfo) (kernel, error) {
	if n.attrInt("training_mode", 0) != 0 {
		return nil, n.errorf("training_mode 1 is not supported (inference only)")
	}
	for i := 1; i < len(n.node.Outputs); i++ {
		if n.node.Outputs[i] != "" {
			return nil, n.errorf("outputs running_mean and running_var exist only in training mode, which is not supported")
		}
	}
	if n.numInputs() != 5 {
		return nil, n.errorf("needs 5 inputs (X, scale, B, input_mean, input_var), got %d", n.numInputs())
	}
	eps := float64(n.attrFloat("epsilon", 1e-5))
	var pre []float64 // a then b, when all four parameter inputs are constant
	params := []*tensor.Tensor{n.constInput(1), n.constInput(2), n.constInput(3), n.constInput(4)}
	if params[0] != nil && params[1] != nil && params[2] != nil && params[3] != nil {
		var err error
		if pre, err = bnFold(params, eps); err != nil {
			return nil, n.errorf("%v", err)
		}
		for i := 1; i <= 4; i++ {
			n.consumeConst(i) // the kernel reads pre only
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		if len(x.Shape) < 2 {
			return nil, fmt.Errorf("input X shape %v needs at least 2 dimensions (N, C, ...)", x.Shape)
		}
		ab := pre
		if ab == nil {
			var err error
			if ab, err = bnFold(in[1:5], eps); err != nil {
				return nil, err
			}
		}
		c, plane := x.Shape[1], tensor.NumElements(x.Shape[2:])
		if len(ab) != 2*c {
			return nil, fmt.Errorf("input X has %d channels, parameters have %d", c, len(ab)/2)
		}
		y := tensor.New(x.DType, x.Shape)
		switch x.DType {
		case tensor.Float32:
			bnApply(x.F32, y.F32, ab, c, plane)
		case tensor.Float64:
			bnApply(x.F64, y.F64, ab, c, plane)
		default:
			return nil, fmt.Errorf("datatype %v is not supported (FP32, FP64)", x.DType)
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// bnFold returns a (per channel scale) followed by b (per channel shift).
func bnFold(p []*tensor.Tensor, eps float64) ([]float64, error) {
	names := [...]string{"scale", "B", "input_mean", "input_var"}
	c := -1
	for i, t := range p {
		if t == nil {
			return nil, fmt.Errorf("input %s is missing", names[i])
		}
		if t.DType != tensor.Float32 && t.DType != tensor.Float64 {
			return nil, fmt.Errorf("input %s datatype %v is not supported (FP32, FP64)", names[i], t.DType)
		}
		if len(t.Shape) != 1 || (c >= 0 && t.Shape[0] != c) {
			return nil, fmt.Errorf("input %s shape %v, want one dimension of the channel count", names[i], t.Shape)
		}
		c = t.Shape[0]
	}
	ab := make([]float64, 2*c)
	for i := range c {
		a := p[0].Float64At(i) / math.Sqrt(p[3].Float64At(i)+eps)
		ab[i] = a
		ab[c+i] = p[1].Float64At(i) - p[2].Float64At(i)*a
	}
	return ab, nil
}

func bnApply[T float32 | float64](x, y []T, ab []float64, c, plane int) {
	for o := 0; o < len(x); o += c * plane {
		for ci := range c {
			a, b := T(ab[ci]), T(ab[c+ci])
			base := o + ci*plane
			xs, ys := x[base:base+plane], y[base:base+plane]
			for i, v := range xs {
				ys[i] = v*a + b
			}
		}
	}
}
