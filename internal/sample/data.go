package sample

import "math/rand/v2"

// Classes are the species, in label order.
var Classes = []string{"setosa", "versicolor", "virginica"}

// Per-species means and standard deviations of the four features, from the
// summary statistics of Fisher's iris data.
var (
	classMeans = [3][4]float64{
		{5.006, 3.428, 1.462, 0.246},
		{5.936, 2.770, 4.260, 1.326},
		{6.588, 2.974, 5.552, 2.026},
	}
	classStd = [3][4]float64{
		{0.352, 0.379, 0.174, 0.105},
		{0.516, 0.314, 0.470, 0.198},
		{0.636, 0.322, 0.552, 0.275},
	}
)

// Dataset is a set of feature rows with labels.
type Dataset struct {
	X [][4]float64
	Y []int
}

// Generate draws perClass examples per species with a fixed seed, so the
// sample model is the same on every machine.
func Generate(perClass int, seed uint64) Dataset {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var d Dataset
	for c := range classMeans {
		for i := 0; i < perClass; i++ {
			var x [4]float64
			for f := range x {
				x[f] = classMeans[c][f] + classStd[c][f]*rng.NormFloat64()
			}
			d.X = append(d.X, x)
			d.Y = append(d.Y, c)
		}
	}
	return d
}

// Example returns one typical row per species, for the demo's curl command.
func Example() [][4]float32 {
	out := make([][4]float32, len(classMeans))
	for c, m := range classMeans {
		for f, v := range m {
			out[c][f] = float32(v)
		}
	}
	return out
}
