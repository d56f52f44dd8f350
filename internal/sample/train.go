package sample

import (
	"math"
	"math/rand/v2"
)

const (
	numFeatures = 4
	numHidden   = 8
	numClasses  = 3
)

// mlp is a 4 → hidden → 3 perceptron in float64 while training.
type mlp struct {
	w1 [numHidden][numFeatures]float64
	b1 [numHidden]float64
	w2 [numClasses][numHidden]float64
	b2 [numClasses]float64
	// Inputs are standardised inside the model (folded into w1, b1 at export).
	mean, std [numFeatures]float64
}

// Train fits the perceptron with full-batch gradient descent with momentum
// on softmax cross-entropy. Deterministic for a given data set and seed.
func Train(d Dataset, epochs int, seed uint64) *mlp {
	m := &mlp{}
	m.standardise(d)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for h := range m.w1 {
		for f := range m.w1[h] {
			m.w1[h][f] = rng.NormFloat64() * math.Sqrt(2.0/numFeatures)
		}
	}
	for c := range m.w2 {
		for h := range m.w2[c] {
			m.w2[c][h] = rng.NormFloat64() * math.Sqrt(1.0/numHidden)
		}
	}
	var vel mlp // momentum buffers, same shape as the weights
	const lr, momentum = 0.1, 0.9
	for e := 0; e < epochs; e++ {
		g := m.gradient(d)
		step(&vel, g, m, lr, momentum)
	}
	return m
}

func (m *mlp) standardise(d Dataset) {
	n := float64(len(d.X))
	for _, x := range d.X {
		for f := range x {
			m.mean[f] += x[f] / n
		}
	}
	for _, x := range d.X {
		for f := range x {
			dv := x[f] - m.mean[f]
			m.std[f] += dv * dv / n
		}
	}
	for f := range m.std {
		m.std[f] = math.Sqrt(m.std[f])
	}
}

// forward returns hidden activations and class probabilities for one row.
func (m *mlp) forward(x [4]float64) (h [numHidden]float64, p [numClasses]float64) {
	var z [numFeatures]float64
	for f := range x {
		z[f] = (x[f] - m.mean[f]) / m.std[f]
	}
	for j := range h {
		s := m.b1[j]
		for f := range z {
			s += m.w1[j][f] * z[f]
		}
		h[j] = math.Max(0, s)
	}
	maxLogit := math.Inf(-1)
	for c := range p {
		s := m.b2[c]
		for j := range h {
			s += m.w2[c][j] * h[j]
		}
		p[c] = s
		maxLogit = math.Max(maxLogit, s)
	}
	var sum float64
	for c := range p {
		p[c] = math.Exp(p[c] - maxLogit)
		sum += p[c]
	}
	for c := range p {
		p[c] /= sum
	}
	return h, p
}

// gradient of the mean cross-entropy loss over the data set.
func (m *mlp) gradient(d Dataset) *mlp {
	g := &mlp{}
	inv := 1 / float64(len(d.X))
	for i, x := range d.X {
		h, p := m.forward(x)
		var z [numFeatures]float64
		for f := range x {
			z[f] = (x[f] - m.mean[f]) / m.std[f]
		}
		var dh [numHidden]float64
		for c := range p {
			dl := p[c] * inv
			if c == d.Y[i] {
				dl -= inv
			}
			g.b2[c] += dl
			for j := range h {
				g.w2[c][j] += dl * h[j]
				dh[j] += dl * m.w2[c][j]
			}
		}
		for j := range dh {
			if h[j] <= 0 {
				continue
			}
			g.b1[j] += dh[j]
			for f := range z {
				g.w1[j][f] += dh[j] * z[f]
			}
		}
	}
	return g
}

func step(vel, g, m *mlp, lr, momentum float64) {
	upd := func(v, gr, w *float64) {
		*v = momentum**v - lr**gr
		*w += *v
	}
	for j := range m.w1 {
		for f := range m.w1[j] {
			upd(&vel.w1[j][f], &g.w1[j][f], &m.w1[j][f])
		}
		upd(&vel.b1[j], &g.b1[j], &m.b1[j])
	}
	for c := range m.w2 {
		for j := range m.w2[c] {
			upd(&vel.w2[c][j], &g.w2[c][j], &m.w2[c][j])
		}
		upd(&vel.b2[c], &g.b2[c], &m.b2[c])
	}
}

// Accuracy is the share of rows classified correctly.
func (m *mlp) Accuracy(d Dataset) float64 {
	ok := 0
	for i, x := range d.X {
		_, p := m.forward(x)
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		if best == d.Y[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(d.X))
}
