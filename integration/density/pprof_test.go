package density

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// A heap profile as the broker's /debug/pprof/heap serves it: gzipped
// protocol buffers (github.com/google/pprof's profile.proto). This file
// decodes the few fields the per-part breakdown needs (sample types,
// samples, locations with their inlined lines, function names, strings),
// with a decoder of its own so the module needs no profile library.

// heapProfile is a decoded heap profile: each sample's stack (leaf first,
// inlined frames expanded) and values.
type heapProfile struct {
	types   []string // sample value types, e.g. "inuse_space"
	samples []sample
}

type sample struct {
	stack  []string // function names, leaf first
	values []int64  // one per type
}

// index returns the position of the value type typ in every sample's
// values, or -1.
func (p *heapProfile) index(typ string) int {
	for i, t := range p.types {
		if t == typ {
			return i
		}
	}
	return -1
}

// readHeapProfile reads and decodes the gzipped profile at path.
func readHeapProfile(path string) (*heapProfile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := decodeProfile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Field numbers of profile.proto.
const (
	fProfileSampleType = 1
	fProfileSample     = 2
	fProfileLocation   = 4
	fProfileFunction   = 5
	fProfileStrings    = 6

	fValueTypeType = 1

	fSampleLocation = 1
	fSampleValue    = 2

	fLocationID   = 1
	fLocationLine = 4
	fLineFunction = 1

	fFunctionID   = 1
	fFunctionName = 2
)

// rawSample is a sample before its locations are resolved.
type rawSample struct {
	locs   []uint64
	values []int64
}

func decodeProfile(data []byte) (*heapProfile, error) {
	var (
		strs    []string
		typeIdx []uint64
		raws    []rawSample
		locs    = map[uint64][]uint64{} // location ID → function IDs, leaf first
		funcs   = map[uint64]uint64{}   // function ID → name string index
	)
	err := eachField(data, func(num int, v uint64, b []byte) error {
		switch num {
		case fProfileStrings:
			strs = append(strs, string(b))
		case fProfileSampleType:
			return eachField(b, func(num int, v uint64, _ []byte) error {
				if num == fValueTypeType {
					typeIdx = append(typeIdx, v)
				}
				return nil
			})
		case fProfileSample:
			s, err := decodeSample(b)
			raws = append(raws, s)
			return err
		case fProfileLocation:
			id, fns, err := decodeLocation(b)
			locs[id] = fns
			return err
		case fProfileFunction:
			var id, name uint64
			err := eachField(b, func(num int, v uint64, _ []byte) error {
				switch num {
				case fFunctionID:
					id = v
				case fFunctionName:
					name = v
				}
				return nil
			})
			funcs[id] = name
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	str := func(i uint64) string {
		if i < uint64(len(strs)) {
			return strs[i]
		}
		return "?"
	}
	p := &heapProfile{}
	for _, i := range typeIdx {
		p.types = append(p.types, str(i))
	}
	for _, r := range raws {
		s := sample{values: r.values}
		for _, l := range r.locs {
			for _, fn := range locs[l] {
				s.stack = append(s.stack, str(funcs[fn]))
			}
		}
		p.samples = append(p.samples, s)
	}
	return p, nil
}

func decodeSample(b []byte) (rawSample, error) {
	var s rawSample
	err := eachField(b, func(num int, v uint64, packed []byte) error {
		switch num {
		case fSampleLocation:
			if packed == nil {
				s.locs = append(s.locs, v)
				return nil
			}
			return eachVarint(packed, func(v uint64) { s.locs = append(s.locs, v) })
		case fSampleValue:
			if packed == nil {
				s.values = append(s.values, int64(v))
				return nil
			}
			return eachVarint(packed, func(v uint64) { s.values = append(s.values, int64(v)) })
		}
		return nil
	})
	return s, err
}

// decodeLocation returns a location's ID and the functions of its lines:
// the first is the innermost of the frames inlined at that address.
func decodeLocation(b []byte) (uint64, []uint64, error) {
	var id uint64
	var fns []uint64
	err := eachField(b, func(num int, v uint64, line []byte) error {
		switch num {
		case fLocationID:
			id = v
		case fLocationLine:
			return eachField(line, func(num int, v uint64, _ []byte) error {
				if num == fLineFunction {
					fns = append(fns, v)
				}
				return nil
			})
		}
		return nil
	})
	return id, fns, err
}

var errProto = errors.New("malformed profile")

// eachField calls fn for every field of the message in b: a varint's value
// (with nil bytes), or a length-delimited field's bytes (non-nil, perhaps
// empty). Fixed-width fields, which profile.proto does not use, are
// skipped.
func eachField(b []byte, fn func(num int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errProto
		}
		b = b[n:]
		num, wire := int(key>>3), key&7
		switch wire {
		case 0: // varint
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return errProto
			}
			b = b[n:]
			if err := fn(num, v, nil); err != nil {
				return err
			}
		case 2: // length-delimited
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errProto
			}
			data := b[n : n+int(l) : n+int(l)] // non-nil: b is not empty
			b = b[n+int(l):]
			if err := fn(num, 0, data); err != nil {
				return err
			}
		case 1: // 64-bit
			if len(b) < 8 {
				return errProto
			}
			b = b[8:]
		case 5: // 32-bit
			if len(b) < 4 {
				return errProto
			}
			b = b[4:]
		default:
			return errProto
		}
	}
	return nil
}

// eachVarint calls fn for every varint of a packed repeated field.
func eachVarint(b []byte, fn func(uint64)) error {
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return errProto
		}
		b = b[n:]
		fn(v)
	}
	return nil
}
