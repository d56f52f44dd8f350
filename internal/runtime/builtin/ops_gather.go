package builtin

import (
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Index-driven data movement: Gather, Slice and Transpose. Slice and
// Transpose both reduce to a strided-copy plan whose innermost level copies
// contiguous runs with copy() whenever the layout allows.

func init() {
	register("Gather", buildGather)
	register("Slice", buildSlice)
	register("Transpose", buildTranspose)
}

func buildGather(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 2); err != nil {
		return nil, err
	}
	axis := n.attrInt("axis", 0)
	if c := n.constInput(1); c != nil && c.DType != tensor.Int32 && c.DType != tensor.Int64 {
		return nil, n.errorf("indices must be INT32 or INT64, got %v", c.DType)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		data, idx := in[0], in[1]
		r := len(data.Shape)
		if r == 0 {
			return nil, fmt.Errorf("data must have at least 1 dimension, got a scalar")
		}
		a, err := shapeNormAxis(axis, r)
		if err != nil {
			return nil, err
		}
		raw, err := shapeInts(idx, "indices")
		if err != nil {
			return nil, err
		}
		dim := data.Shape[a]
		ids := make([]int, len(raw))
		for i, v := range raw {
			if v < -int64(dim) || v >= int64(dim) {
				return nil, fmt.Errorf("index %d is out of range for axis %d of size %d", v, a, dim)
			}
			if v < 0 {
				v += int64(dim)
			}
			ids[i] = int(v)
		}
		outShape := make([]int, 0, r-1+len(idx.Shape))
		outShape = append(outShape, data.Shape[:a]...)
		outShape = append(outShape, idx.Shape...)
		outShape = append(outShape, data.Shape[a+1:]...)
		out := tensor.New(data.DType, outShape)
		outer, inner := shapeProd(data.Shape[:a]), shapeProd(data.Shape[a+1:])
		switch data.DType {
		case tensor.Float32:
			gatherInto(out.F32, data.F32, ids, outer, dim, inner)
		case tensor.Float64:
			gatherInto(out.F64, data.F64, ids, outer, dim, inner)
		case tensor.Int32:
			gatherInto(out.I32, data.I32, ids, outer, dim, inner)
		case tensor.Int64:
			gatherInto(out.I64, data.I64, ids, outer, dim, inner)
		case tensor.Bool:
			gatherInto(out.Bool, data.Bool, ids, outer, dim, inner)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// gatherInto copies, for each outer slab, the inner-sized row of every
// selected index (a whole row per index for axis 0 embeddings).
func gatherInto[T shapeElem](dst, src []T, ids []int, outer, dim, inner int) {
	d := 0
	for o := 0; o < outer; o++ {
		base := o * dim
		if inner == 1 {
			for _, id := range ids {
				dst[d] = src[base+id]
				d++
			}
			continue
		}
		for _, id := range ids {
			s := (base + id) * inner
			d += copy(dst[d:d+inner], src[s:s+inner])
		}
	}
}

// gatherPlan describes a copy whose destination is written in order. The
// source offset of the outer levels follows an odometer over counts/steps;
// the innermost level takes n items step apart, each a contiguous block.
type gatherPlan struct {
	base   int
	counts []int
	steps  []int
	n      int
	step   int
	block  int
}

func gatherCopyPlan[T shapeElem](p *gatherPlan, dst, src []T) {
	run := p.n * p.block
	if run == 0 || len(dst) == 0 {
		return
	}
	idx := make([]int, len(p.counts))
	off, d := p.base, 0
	for {
		switch {
		case p.step == p.block:
			copy(dst[d:d+run], src[off:off+run])
		case p.block == 1:
			s := off
			for j := d; j < d+run; j++ {
				dst[j] = src[s]
				s += p.step
			}
		default:
			s := off
			for j := d; j < d+run; j += p.block {
				copy(dst[j:j+p.block], src[s:s+p.block])
				s += p.step
			}
		}
		d += run
		k := len(idx) - 1
		for ; k >= 0; k-- {
			idx[k]++
			off += p.steps[k]
			if idx[k] < p.counts[k] {
				break
			}
			off -= p.steps[k] * p.counts[k]
			idx[k] = 0
		}
		if k < 0 {
			return
		}
	}
}

// gatherRunPlan allocates the output and fills it through the plan.
func gatherRunPlan(p *gatherPlan, x *tensor.Tensor, shape []int) *tensor.Tensor {
	out := tensor.New(x.DType, shape)
	switch x.DType {
	case tensor.Float32:
		gatherCopyPlan(p, out.F32, x.F32)
	case tensor.Float64:
		gatherCopyPlan(p, out.F64, x.F64)
	case tensor.Int32:
		gatherCopyPlan(p, out.I32, x.I32)
	case tensor.Int64:
		gatherCopyPlan(p, out.I64, x.I64)
	case tensor.Bool:
		gatherCopyPlan(p, out.Bool, x.Bool)
	}
	return out
}

func buildSlice(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 3); err != nil {
		return nil, err
	}
	names := [...]string{1: "starts", 2: "ends", 3: "axes", 4: "steps"}
	// Parse constant parameters once; run-time ones are parsed per call.
	var fixed [5][]int64
	for i := 1; i <= 4; i++ {
		if c := n.constInput(i); c != nil {
			v, err := shapeInts(c, names[i])
			if err != nil {
				return nil, n.errorf("%v", err)
			}
			fixed[i] = v
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		var p [5][]int64
		for i := 1; i <= 4; i++ {
			p[i] = fixed[i]
			if t := shapeOptIn(in, i); p[i] == nil && t != nil {
				v, err := shapeInts(t, names[i])
				if err != nil {
					return nil, err
				}
				p[i] = v
			}
		}
		return sliceRun(in[0], p[1], p[2], p[3], p[4])
	}, nil
}

func sliceRun(x *tensor.Tensor, starts, ends, axes, steps []int64) ([]*tensor.Tensor, error) {
	r := len(x.Shape)
	k := len(starts)
	if len(ends) != k || (axes != nil && len(axes) != k) || (steps != nil && len(steps) != k) {
		return nil, fmt.Errorf("starts, ends, axes and steps must have the same length, got %d, %d, %d, %d",
			len(starts), len(ends), len(axes), len(steps))
	}
	first := make([]int, r)
	step := make([]int, r)
	count := append([]int(nil), x.Shape...)
	for i := range step {
		step[i] = 1
	}
	seen := make([]bool, r)
	for i := 0; i < k; i++ {
		ax := int64(i)
		if axes != nil {
			ax = axes[i]
		}
		a, err := shapeNormAxis(ax, r)
		if err != nil {
			return nil, err
		}
		if seen[a] {
			return nil, fmt.Errorf("axis %d is sliced twice", a)
		}
		seen[a] = true
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return nil, fmt.Errorf("step for axis %d is 0", a)
		}
		s, c := sliceClamp(starts[i], ends[i], st, int64(x.Shape[a]))
		first[a], step[a], count[a] = int(s), int(st), int(c)
	}
	// Trailing axes taken whole form one contiguous block.
	strides := shapeStrides(x.Shape)
	last := r - 1
	for last >= 0 && first[last] == 0 && step[last] == 1 && count[last] == x.Shape[last] {
		last--
	}
	if last < 0 {
		return []*tensor.Tensor{x}, nil // the whole tensor: nothing to copy
	}
	p := &gatherPlan{block: 1, n: count[last], step: step[last] * strides[last]}
	if last+1 < r {
		p.block = strides[last]
	}
	for a := 0; a <= last; a++ {
		p.base += first[a] * strides[a]
		if a < last {
			p.counts = append(p.counts, count[a])
			p.steps = append(p.steps, step[a]*strides[a])
		}
	}
	return []*tensor.Tensor{gatherRunPlan(p, x, count)}, nil
}

// sliceClamp applies ONNX Slice's rules to one axis of size d and returns the
// first index and the number of elements. Huge values such as INT64_MAX and
// INT64_MIN clamp to the ends; the arithmetic avoids overflow for them.
func sliceClamp(start, end, step, d int64) (first, count int64) {
	if d == 0 {
		return 0, 0
	}
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	if step > 0 {
		start, end = min(max(start, 0), d), min(max(end, 0), d)
		if end <= start {
			return start, 0
		}
		return start, (end-start-1)/step + 1
	}
	start, end = min(max(start, 0), d-1), min(max(end, -1), d-1)
	if start <= end {
		return start, 0
	}
	// step < 0: truncated division is odd, so this is (start-end-1)/|step|
	// without negating step (which overflows for INT64_MIN).
	return start, -((start - end - 1) / step) + 1
}

func buildTranspose(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 1); err != nil {
		return nil, err
	}
	perm64, hasPerm := n.attrInts("perm")
	perm := make([]int, len(perm64))
	seen := make([]bool, len(perm64))
	for i, p := range perm64 {
		if p < 0 || p >= int64(len(perm64)) || seen[p] {
			return nil, n.errorf("perm %v is not a permutation of 0..%d", perm64, len(perm64)-1)
		}
		seen[p] = true
		perm[i] = int(p)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		r := len(x.Shape)
		p := perm
		if !hasPerm {
			p = make([]int, r)
			for i := range p {
				p[i] = r - 1 - i
			}
		} else if len(p) != r {
			return nil, fmt.Errorf("perm %v does not fit input of shape %v", perm64, x.Shape)
		}
		outShape := make([]int, r)
		for i, a := range p {
			outShape[i] = x.Shape[a]
		}
		return []*tensor.Tensor{transposeRun(x, p, outShape)}, nil
	}, nil
}

// transposeRun simplifies the permutation first: size-1 axes are dropped
// and input axes that stay adjacent in the output are merged. NCHW<->NHWC
// then becomes a batched 2-D transpose, and [B,S,H,D]->[B,H,S,D] a copy of
// D-long runs.
func transposeRun(x *tensor.Tensor, perm, outShape []int) *tensor.Tensor {
	// Input axes in output order, without size-1 axes.
	order := make([]int, 0, len(perm))
	for _, a := range perm {
		if x.Shape[a] != 1 {
			order = append(order, a)
		}
	}
	// Group runs of input axes that stay adjacent; heads[g] is the first
	// input axis of group g, groups listed in output order.
	var heads, sizes []int
	for i, a := range order {
		if i > 0 && transposeAdjacent(x.Shape, order[i-1], a) {
			sizes[len(sizes)-1] *= x.Shape[a]
			continue
		}
		heads, sizes = append(heads, a), append(sizes, x.Shape[a])
	}
	// The merged input axes are the groups in input order: group g is
	// merged axis mperm[g], the number of groups that start before it.
	m := len(heads)
	mdims, mperm := make([]int, m), make([]int, m)
	for g, h := range heads {
		for _, h2 := range heads {
			if h2 < h {
				mperm[g]++
			}
		}
		mdims[mperm[g]] = sizes[g]
	}
	if m <= 1 || x.Len() == 0 {
		// Memory order is unchanged: relabel (or nothing to move).
		return x.Reshaped(outShape)
	}
	out := tensor.New(x.DType, outShape)
	switch {
	case m == 2:
		transposeBatched(x, out, 1, mdims[0], mdims[1])
		return out
	case m == 3 && mperm[0] == 0 && mperm[1] == 2:
		transposeBatched(x, out, mdims[0], mdims[1], mdims[2])
		return out
	}
	st := shapeStrides(mdims)
	p := &gatherPlan{block: 1}
	inner := m - 1
	if mperm[m-1] == m-1 {
		p.block = mdims[m-1]
		inner = m - 2
	}
	p.n, p.step = mdims[mperm[inner]], st[mperm[inner]]
	for i := 0; i < inner; i++ {
		p.counts = append(p.counts, mdims[mperm[i]])
		p.steps = append(p.steps, st[mperm[i]])
	}
	return gatherRunPlan(p, x, outShape)
}

// transposeAdjacent reports whether input axis b directly follows axis a once
// size-1 axes between them are ignored.
func transposeAdjacent(dims []int, a, b int) bool {
	if b <= a {
		return false
	}
	for i := a + 1; i < b; i++ {
		if dims[i] != 1 {
			return false
		}
	}
	return true
}

func transposeBatched(x, out *tensor.Tensor, batch, rows, cols int) {
	switch x.DType {
	case tensor.Float32:
		transposeBlocks(out.F32, x.F32, batch, rows, cols)
	case tensor.Float64:
		transposeBlocks(out.F64, x.F64, batch, rows, cols)
	case tensor.Int32:
		transposeBlocks(out.I32, x.I32, batch, rows, cols)
	case tensor.Int64:
		transposeBlocks(out.I64, x.I64, batch, rows, cols)
	case tensor.Bool:
		transposeBlocks(out.Bool, x.Bool, batch, rows, cols)
	}
}

// transposeBlocks transposes batch rows×cols matrices in cache-sized tiles
// so that neither the reads nor the writes stride through all of memory.
func transposeBlocks[T shapeElem](dst, src []T, batch, rows, cols int) {
	const tile = 32
	size := rows * cols
	for b := 0; b < batch; b++ {
		s, d := src[b*size:(b+1)*size], dst[b*size:(b+1)*size]
		for i0 := 0; i0 < rows; i0 += tile {
			i1 := min(i0+tile, rows)
			for j0 := 0; j0 < cols; j0 += tile {
				j1 := min(j0+tile, cols)
				for i := i0; i < i1; i++ {
					row := s[i*cols : i*cols+cols]
					for j := j0; j < j1; j++ {
						d[j*rows+i] = row[j]
					}
				}
			}
		}
	}
}
