package ipam

// PoolInfo describes a pool for status output.
type PoolInfo struct {
	ID        string `json:"id"`
	Subnet    string `json:"subnet"`
	Range     string `json:"range,omitempty"`
	Allocated uint64 `json:"allocated"`
	// Size is how many addresses the pool can ever hand out, capped at
	// 2^63 for large IPv6 pools.
	Size uint64 `json:"size"`
}

// Pools lists the pools with their number of allocated addresses.
func (a *Allocator) Pools() []PoolInfo {
	pools := a.allPools()
	out := make([]PoolInfo, 0, len(pools))
	for _, p := range pools {
		out = append(out, PoolInfo{ID: p.id(), Subnet: p.rec.Subnet, Range: p.rec.Range, Allocated: p.used.Load(), Size: p.size()})
	}
	return out
}
