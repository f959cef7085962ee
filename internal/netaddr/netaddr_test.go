package netaddr

import "testing"

func TestParse(t *testing.T) {
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
