package oip

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// dataScanner parses a "data" array straight into a tensor's typed slice.
// The JSON has already been validated by encoding/json, but the scanner
// still checks every byte it relies on, so a bug upstream cannot make it
// read out of bounds.
type dataScanner struct {
	b      []byte
	pos    int
	t      *tensor.Tensor
	dt     tensor.DType
	shape  []int
	suffix []int // suffix[l] = product of shape[l:], saturating
	n      int   // values seen so far
	store  int   // values the tensor has room for
	leaf   int   // nesting level holding the values; -1 until known
	check  bool  // false when only counting values for an error message
}

// decodeData parses data as a row-major array, flat or nested, of values
// of type dt, and checks it against shape. Nesting is consistent when all
// values sit at the same depth d, each array above depth d has shape[level]
// elements, and each innermost array holds the product of the remaining
// dimensions: so [[1,2],[3,4]] and [1,2,3,4] both fit shape [2,2].
func decodeData(dt tensor.DType, shape []int, data []byte) (*tensor.Tensor, error) {
	// Every value takes at least one byte plus a separator, which bounds
	// what a body of this size can hold whatever the shape claims.
	maxVals := len(data)/2 + 1
	want, ok := product(shape, maxVals)
	if !ok {
		s := &dataScanner{b: data, t: &tensor.Tensor{DType: dt}, dt: dt, leaf: -1}
		if err := s.run(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("shape %s needs %s values, data has %d", tensor.ShapeString(shape), countString(shape), s.n)
	}
	s := &dataScanner{
		b: data, t: tensor.New(dt, shape), dt: dt, shape: shape,
		suffix: suffixProducts(shape), store: want, leaf: -1, check: true,
	}
	if err := s.run(); err != nil {
		return nil, err
	}
	if s.n != want {
		return nil, fmt.Errorf("shape %s needs %d values, data has %d", tensor.ShapeString(shape), want, s.n)
	}
	return s.t, nil
}

// product multiplies the dimensions, reporting false if the result exceeds
// limit (a zero dimension makes any other size harmless).
func product(shape []int, limit int) (int, bool) {
	for _, d := range shape {
		if d == 0 {
			return 0, true
		}
	}
	p := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(p, uint64(d))
		if hi != 0 || lo > uint64(limit) {
			return 0, false
		}
		p = lo
	}
	return int(p), true
}

func countString(shape []int) string {
	p := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(p, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return "more than 2^63"
		}
		p = lo
	}
	return strconv.FormatUint(p, 10)
}

func suffixProducts(shape []int) []int {
	s := make([]int, len(shape)+1)
	s[len(shape)] = 1
	for i := len(shape) - 1; i >= 0; i-- {
		hi, lo := bits.Mul64(uint64(s[i+1]), uint64(shape[i]))
		if hi != 0 || lo > math.MaxInt {
			s[i] = math.MaxInt
		} else {
			s[i] = int(lo)
		}
	}
	return s
}

func (s *dataScanner) run() error {
	s.ws()
	if s.pos >= len(s.b) || s.b[s.pos] != '[' {
		return errors.New("data must be a JSON array")
	}
	if err := s.array(0); err != nil {
		return err
	}
	s.ws()
	if s.pos != len(s.b) {
		return errors.New("unexpected text after data array")
	}
	return nil
}

func (s *dataScanner) ws() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

const (
	kindEmpty = iota
	kindValues
	kindArrays
)

// array parses the array starting at s.pos, at nesting level lvl.
func (s *dataScanner) array(lvl int) error {
	s.pos++ // '['
	count, kind := 0, kindEmpty
	for {
		s.ws()
		if s.pos >= len(s.b) {
			return errors.New("data array is not closed")
		}
		if s.b[s.pos] == ']' {
			s.pos++
			break
		}
		if count > 0 {
			if s.b[s.pos] != ',' {
				return errors.New("malformed data array")
			}
			s.pos++
			s.ws()
			if s.pos >= len(s.b) {
				return errors.New("data array is not closed")
			}
		}
		if s.b[s.pos] == '[' {
			if kind == kindValues {
				return errors.New("data mixes values and arrays at the same level")
			}
			kind = kindArrays
			if s.check && lvl+1 >= max(len(s.shape), 1) {
				return fmt.Errorf("data is nested deeper than shape %s allows", tensor.ShapeString(s.shape))
			}
			if !s.check && lvl > 10000 {
				return errors.New("data is nested too deeply")
			}
			if err := s.array(lvl + 1); err != nil {
				return err
			}
		} else {
			if kind == kindArrays {
				return errors.New("data mixes values and arrays at the same level")
			}
			kind = kindValues
			if err := s.value(); err != nil {
				return err
			}
		}
		count++
	}
	if !s.check {
		return nil
	}
	if lvl == 0 && kind != kindArrays {
		return nil // flat: the total count check in decodeData says it better
	}
	switch kind {
	case kindEmpty:
		if s.suffix[lvl] != 0 {
			return s.nestErr(lvl, 0, s.suffix[lvl])
		}
	case kindValues:
		if s.leaf >= 0 && s.leaf != lvl {
			return fmt.Errorf("data nesting is inconsistent: values at depths %d and %d", s.leaf+1, lvl+1)
		}
		s.leaf = lvl
		if count != s.suffix[lvl] {
			return s.nestErr(lvl, count, s.suffix[lvl])
		}
	case kindArrays:
		if count != s.shape[lvl] {
			return s.nestErr(lvl, count, s.shape[lvl])
		}
	}
	return nil
}

// nestErr reports a nested array of the wrong length.
func (s *dataScanner) nestErr(lvl, got, want int) error {
	return fmt.Errorf("data does not match shape %s: an array at depth %d has %d elements, expected %d",
		tensor.ShapeString(s.shape), lvl+1, got, want)
}

// value parses one scalar and stores it if there is room; past the end it
// only counts, so the error can say how many values there were.
func (s *dataScanner) value() error {
	i := s.n
	s.n++
	c := s.b[s.pos]
	switch {
	case c == 't' || c == 'f':
		v, ok := s.literal()
		if !ok {
			return errors.New("malformed data array")
		}
		if s.dt != tensor.Bool {
			return fmt.Errorf("value %d is a boolean, datatype %v needs numbers", i, s.dt)
		}
		if i < s.store {
			s.t.Bool[i] = v
		}
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number(i)
	case c == '"':
		return fmt.Errorf("value %d is a string, datatype %v needs %s", i, s.dt, s.expected())
	case c == 'n':
		return fmt.Errorf("value %d is null, datatype %v needs %s", i, s.dt, s.expected())
	case c == '{':
		return fmt.Errorf("value %d is an object, datatype %v needs %s", i, s.dt, s.expected())
	}
	return errors.New("malformed data array")
}

func (s *dataScanner) expected() string {
	if s.dt == tensor.Bool {
		return "true or false"
	}
	return "numbers"
}

func (s *dataScanner) literal() (bool, bool) {
	rest := s.b[s.pos:]
	if len(rest) >= 4 && string(rest[:4]) == "true" {
		s.pos += 4
		return true, true
	}
	if len(rest) >= 5 && string(rest[:5]) == "false" {
		s.pos += 5
		return false, true
	}
	return false, false
}

func (s *dataScanner) number(i int) error {
	start := s.pos
	integral := true
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		if c >= '0' && c <= '9' || c == '-' {
			s.pos++
		} else if c == '.' || c == 'e' || c == 'E' || c == '+' {
			integral = false
			s.pos++
		} else {
			break
		}
	}
	tok := s.b[start:s.pos]
	switch s.dt {
	case tensor.Float32, tensor.Float64:
		bitSize := 64
		if s.dt == tensor.Float32 {
			bitSize = 32
		}
		f, err := strconv.ParseFloat(string(tok), bitSize)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("value %d (%s) is out of range for %v", i, tok, s.dt)
			}
			return fmt.Errorf("value %d (%.40s) is not a number", i, tok)
		}
		if i < s.store {
			if bitSize == 32 {
				s.t.F32[i] = float32(f)
			} else {
				s.t.F64[i] = f
			}
		}
	case tensor.Int32, tensor.Int64:
		if !integral {
			return fmt.Errorf("value %d (%.40s) is not an integer, datatype %v needs integers", i, tok, s.dt)
		}
		bitSize := 64
		if s.dt == tensor.Int32 {
			bitSize = 32
		}
		v, err := strconv.ParseInt(string(tok), 10, bitSize)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("value %d (%.40s) is out of range for %v", i, tok, s.dt)
			}
			return fmt.Errorf("value %d (%.40s) is not an integer", i, tok)
		}
		if i < s.store {
			if bitSize == 32 {
				s.t.I32[i] = int32(v)
			} else {
				s.t.I64[i] = v
			}
		}
	case tensor.Bool:
		return fmt.Errorf("value %d (%.40s) is not a boolean, datatype BOOL needs true or false", i, tok)
	}
	return nil
}
