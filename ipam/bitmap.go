package ipam

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

const (
	chunkBits  = 4096
	chunkWords = chunkBits / 64
	chunkBytes = chunkBits / 8
	chunkShift = 12 // log2(chunkBits)
)

// chunk holds the allocation bits of 4096 consecutive offsets.
type chunk struct {
	words [chunkWords]uint64
	used  int // number of set bits
}

// bitmap is a sparse set of host offsets in [0, last]. Chunks that were never
// used are absent and read as all-free.
type bitmap struct {
	last   uint64            // highest offset the bitmap covers
	chunks map[uint64]*chunk // chunk index -> bits; absent means empty
	used   uint64            // total set bits
}

func newBitmap(last uint64) *bitmap {
	return &bitmap{last: last, chunks: map[uint64]*chunk{}}
}

func (b *bitmap) isSet(off uint64) bool {
	c := b.chunks[off>>chunkShift]
	if c == nil {
		return false
	}
	i := off & (chunkBits - 1)
	return c.words[i/64]&(1<<(i%64)) != 0
}

// set marks off as used and returns false if it already was.
func (b *bitmap) set(off uint64) bool {
	ci := off >> chunkShift
	c := b.chunks[ci]
	if c == nil {
		c = &chunk{}
		b.chunks[ci] = c
	}
	i := off & (chunkBits - 1)
	mask := uint64(1) << (i % 64)
	if c.words[i/64]&mask != 0 {
		return false
	}
	c.words[i/64] |= mask
	c.used++
	b.used++
	return true
}

// clear marks off as free and returns false if it already was.
func (b *bitmap) clear(off uint64) bool {
	ci := off >> chunkShift
	c := b.chunks[ci]
	if c == nil {
		return false
	}
	i := off & (chunkBits - 1)
	mask := uint64(1) << (i % 64)
	if c.words[i/64]&mask == 0 {
		return false
	}
	c.words[i/64] &^= mask
	c.used--
	b.used--
	if c.used == 0 {
		delete(b.chunks, ci)
	}
	return true
}

// nextFree returns the lowest free offset in [lo, hi].
func (b *bitmap) nextFree(lo, hi uint64) (uint64, bool) {
	if lo > hi {
		return 0, false
	}
	for ci := lo >> chunkShift; ci <= hi>>chunkShift; ci++ {
		base := ci << chunkShift
		c := b.chunks[ci]
		if c == nil {
			return max(base, lo), true
		}
		if c.used < chunkBits {
			if off, ok := c.firstZero(base, lo, hi); ok {
				return off, true
			}
		}
		if ci == hi>>chunkShift { // also guards the overflow of ci++ at the top
			break
		}
	}
	return 0, false
}

// firstZero finds the lowest clear bit of c whose offset is in [lo, hi].
func (c *chunk) firstZero(base, lo, hi uint64) (uint64, bool) {
	for w := range chunkWords {
		free := ^c.words[w]
		if free == 0 {
			continue
		}
		wbase := base + uint64(w)*64
		if wbase+63 < lo {
			continue
		}
		if wbase > hi {
			return 0, false
		}
		if lo > wbase {
			free &= ^uint64(0) << (lo - wbase)
		}
		if hi < wbase+63 {
			free &= ^uint64(0) >> (63 - (hi - wbase))
		}
		if free != 0 {
			return wbase + uint64(bits.TrailingZeros64(free)), true
		}
	}
	return 0, false
}

// chunkData returns the persisted form of chunk ci, or nil if it is empty.
func (b *bitmap) chunkData(ci uint64) []byte {
	c := b.chunks[ci]
	if c == nil {
		return nil
	}
	out := make([]byte, chunkBytes)
	for w, v := range c.words {
		binary.LittleEndian.PutUint64(out[w*8:], v)
	}
	return out
}

// loadChunk restores chunk ci from its persisted form.
func (b *bitmap) loadChunk(ci uint64, data []byte) error {
	if len(data) != chunkBytes {
		return fmt.Errorf("chunk %d: %d bytes, want %d", ci, len(data), chunkBytes)
	}
	if ci > b.last>>chunkShift {
		return fmt.Errorf("chunk %d lies beyond the pool", ci)
	}
	if old := b.chunks[ci]; old != nil {
		b.used -= uint64(old.used)
	}
	c := &chunk{}
	for w := range c.words {
		c.words[w] = binary.LittleEndian.Uint64(data[w*8:])
		c.used += bits.OnesCount64(c.words[w])
	}
	if c.used == 0 {
		delete(b.chunks, ci)
		return nil
	}
	b.chunks[ci] = c
	b.used += uint64(c.used)
	return nil
}

// each calls fn with every set offset, in increasing order.
func (b *bitmap) each(fn func(off uint64)) {
	idx := make([]uint64, 0, len(b.chunks))
	for ci := range b.chunks {
		idx = append(idx, ci)
	}
	slices.Sort(idx)
	for _, ci := range idx {
		c := b.chunks[ci]
		for w, word := range c.words {
			for word != 0 {
				bit := uint64(bits.TrailingZeros64(word))
				fn(ci<<chunkShift + uint64(w)*64 + bit)
				word &= word - 1
			}
		}
	}
}
