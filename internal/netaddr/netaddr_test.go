package netaddr

import (
	"net/netip"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.0.0.2":          "10.0.0.2",
		"10.0.0.2/24":       "10.0.0.2",
		" 10.0.0.2 ":        "10.0.0.2",
		"fd00::1/64":        "fd00::1",
		"::ffff:10.0.0.7":   "10.0.0.7",
		"::ffff:10.0.0.7/8": "10.0.0.7",
	} {
		got, err := Parse(in)
		if err != nil || got.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0", "10.0.0.0/33", "host"} {
		if a, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, a)
		}
	}
}

func TestLast(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ prefix, want string }{
		{"10.40.0.0/16", "10.40.255.255"}, {"10.40.0.7/24", "10.40.0.255"}, {"10.0.0.0/8", "10.255.255.255"},
		{"192.0.2.0/26", "192.0.2.63"}, {"192.0.2.9/32", "192.0.2.9"}, {"fd00::/64", "fd00::ffff:ffff:ffff:ffff"},
	} {
		if got := Last(netip.MustParsePrefix(tt.prefix)); got.String() != tt.want {
			t.Errorf("Last(%s) = %s, want %s", tt.prefix, got, tt.want)
		}
	}
}
