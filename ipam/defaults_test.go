package ipam

import (
	"strconv"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/ipam"

	"github.com/mynet/mynet/internal/store"
)

func TestParsePoolSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, err string
	}{
		{in: "base=10.10.0.0/16,size=24", want: "10.10.0.0/16 /24"},
		{in: " base=10.10.0.0/16, size=16", want: "10.10.0.0/16 /16"},
		{in: "size=20,base=192.168.0.0/16", want: "192.168.0.0/16 /20"},
		{in: "base=10.10.0.0/16", err: "want both"},
		{in: "base=10.10.0.1/16,size=24", err: "not a network address"},
		{in: "base=10.10.0.0/16,size=8", err: "size /8 must be between"},
		{in: "base=10.0.0.0/8,size=x", err: "not a number"},
		{in: "base=fd00::/48,size=64", err: "IPv4"},
		{in: "base=10.10.0.0/16,size=24,mtu=9000", err: "unknown field"},
		{in: "10.10.0.0/16", err: "want base=CIDR,size=N"},
	}
	for _, tt := range tests {
		set, err := ParsePoolSet(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParsePoolSet(%q) error = %v, want one containing %q", tt.in, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("ParsePoolSet(%q): %v", tt.in, err)
		case tt.err == "":
			if got := set.Base.String() + " /" + strconv.Itoa(set.Size); got != tt.want {
				t.Errorf("ParsePoolSet(%q) = %s, want %s", tt.in, got, tt.want)
			}
		}
	}
}

// Pools given as dockerd's --default-address-pool replace Docker's.
func TestConfiguredDefaultPools(t *testing.T) {
	t.Parallel()
	set, err := ParsePoolSet("base=10.77.0.0/16,size=24")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Store: store.NewMemory(), LocalPools: []PoolSet{set}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10.77.0.0/24", "10.77.1.0/24"} {
		if got := createNetworkPool(t, a, api.RequestPoolRequest{}).Pool; got != want {
			t.Errorf("default pool = %s, want %s", got, want)
		}
	}
}
