package ipam

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/mynet/mynet/internal/store"
)

func (a *Allocator) load() error {
	if err := a.loadPools(); err != nil {
		return err
	}
	for _, p := range a.pools {
		p.settle()
	}
	return nil
}

func (a *Allocator) loadPools() error {
	return a.store.View(func(tx store.Tx) error {
		err := store.ForEachJSON(tx, bucketPools, func(key string, rec *poolRecord) error {
			p, err := newPool(*rec)
			if err != nil {
				return fmt.Errorf("pool %s: %w", key, err)
			}
			a.pools[p.key] = p
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.ForEach(bucketBits, func(key string, v []byte) error {
			pk, ci, err := parseChunkKey(key)
			if err != nil {
				return err
			}
			p := a.pools[pk]
			if p == nil {
				a.log.WithField("key", key).Warn("ignoring allocation chunk of an unknown pool")
				return nil
			}
			return p.bits.loadChunk(ci, v)
		})
		if err != nil {
			return err
		}
		return tx.ForEach(bucketMACs, func(key string, v []byte) error {
			i := strings.LastIndexByte(key, '@')
			if i < 0 || len(v) != 8 {
				return fmt.Errorf("malformed MAC record %q", key)
			}
			if p := a.pools[key[:i]]; p != nil {
				off := binary.BigEndian.Uint64(v)
				p.macs[key[i+1:]], p.byOff[off] = off, key[i+1:]
			}
			return nil
		})
	})
}

func chunkKey(pk string, ci uint64) string { return fmt.Sprintf("%s#%016x", pk, ci) }

func parseChunkKey(key string) (string, uint64, error) {
	i := strings.LastIndexByte(key, '#')
	if i < 0 {
		return "", 0, fmt.Errorf("malformed chunk key %q", key)
	}
	var ci uint64
	if _, err := fmt.Sscanf(key[i+1:], "%x", &ci); err != nil {
		return "", 0, fmt.Errorf("malformed chunk key %q: %w", key, err)
	}
	return key[:i], ci, nil
}

// save writes, in one transaction, the chunk holding off and the MAC record
// of the allocation: mac's record when an address is allocated for it, and
// the removal of off's record when it is released (mac ""). Caller holds
// p.mu; the maps are updated by the caller once save succeeded.
func (a *Allocator) save(p *pool, off uint64, mac string) error {
	ci := off >> chunkShift
	data := p.bits.chunkData(ci)
	err := a.store.Update(func(tx store.Tx) error {
		var err error
		if data == nil {
			err = tx.Delete(bucketBits, chunkKey(p.key, ci))
		} else {
			err = tx.Put(bucketBits, chunkKey(p.key, ci), data)
		}
		if err != nil {
			return err
		}
		if mac != "" {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], off)
			return tx.Put(bucketMACs, p.key+"@"+mac, v[:])
		}
		if old, ok := p.byOff[off]; ok && !p.bits.isSet(off) {
			return tx.Delete(bucketMACs, p.key+"@"+old)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save allocations of %s: %w", p.id(), err)
	}
	return nil
}
