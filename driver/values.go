package driver

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/netutil"
)

// The checks and parsers of single values: IDs, interface names and option
// values as Docker passes them.

// validID accepts Docker's object IDs (hex), and nothing that could reach a
// command line or an interface name in a harmful shape.
func validID(what, id string) error {
	if len(id) < 12 || len(id) > 128 {
		return errdefs.Invalid("invalid %s ID %q: want 12 to 128 letters and digits", what, id)
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return errdefs.Invalid("invalid %s ID %q: want letters and digits only", what, id)
		}
	}
	return nil
}

// validateIfName accepts interface names the kernel takes that are also
// safe on an iptables command line: letters, digits, '_', '.' and '-', and
// starting with a letter or digit (a leading '-' would read as an option).
func validateIfName(key, name string, maxLen int) error {
	if err := netutil.ValidateName(name); err != nil {
		return errdefs.Invalid("option %s: %v", key, err)
	}
	if c := name[0]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return errdefs.Invalid("option %s: %q must start with a letter or digit", key, name)
	}
	if len(name) > maxLen {
		return errdefs.Invalid("option %s: %q is %d bytes, at most %d are allowed", key, name, len(name), maxLen)
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '.' || c == '-') {
			return errdefs.Invalid("option %s: %q may contain only letters, digits, '_', '.' and '-'", key, name)
		}
	}
	return nil
}

func parseIP(key string, v any) (netip.Addr, error) {
	s, err := parseString(key, v)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, errdefs.Invalid("option %s: %q is not an IP address", key, s)
	}
	return a.Unmap(), nil
}

// parseTrustedIfaces takes Docker's ':'-separated interface list (empty
// names skipped, as Docker does) and returns it in the same form, each name
// checked.
func parseTrustedIfaces(key string, v any) (string, error) {
	s, err := parseString(key, v)
	if err != nil {
		return "", err
	}
	names := strings.FieldsFunc(s, func(r rune) bool { return r == ':' })
	for _, n := range names {
		if err := validateIfName(key, n, netutil.MaxNameLen); err != nil {
			return "", err
		}
	}
	return strings.Join(names, ":"), nil
}

func parseGatewayMode(key string, v any) (string, error) {
	s, err := parseString(key, v)
	if err != nil {
		return "", err
	}
	switch s {
	case GatewayNAT, GatewayNATUnprotected, GatewayRouted, GatewayIsolated:
		return s, nil
	}
	return "", errdefs.Invalid("option %s: unknown gateway mode %q (want %s, %s, %s or %s)",
		key, s, GatewayNAT, GatewayNATUnprotected, GatewayRouted, GatewayIsolated)
}

// Docker passes -o values as strings; API clients may send JSON booleans
// and numbers, which its bridge driver accepts too.
func parseString(key string, v any) (string, error) {
	switch s := v.(type) {
	case string:
		return s, nil
	default:
		return "", errdefs.Invalid("option %s: want a string, got %v", key, v)
	}
}

func parseBool(key string, v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		on, err := strconv.ParseBool(strings.TrimSpace(b))
		if err != nil {
			return false, errdefs.Invalid("option %s: %q is not a boolean (true or false)", key, b)
		}
		return on, nil
	default:
		return false, errdefs.Invalid("option %s: want true or false, got %v", key, v)
	}
}

func parseMTU(key string, v any) (int, error) {
	var n int
	switch x := v.(type) {
	case string:
		var err error
		if n, err = strconv.Atoi(strings.TrimSpace(x)); err != nil {
			return 0, errdefs.Invalid("option %s: %q is not a number", key, x)
		}
	case float64:
		n = int(x)
		if float64(n) != x {
			return 0, errdefs.Invalid("option %s: %v is not a whole number", key, x)
		}
	default:
		return 0, errdefs.Invalid("option %s: want a number, got %v", key, v)
	}
	if n == 0 {
		return 0, nil // Docker's "0" means the default
	}
	if n < 68 || n > 65535 {
		return 0, errdefs.Invalid("option %s: MTU %d is out of range (68 to 65535)", key, n)
	}
	return n, nil
}

// OptEndpointIfName names the container's interface exactly (an endpoint
// option: docker network connect --driver-opt, or docker run --network
// name=N,driver-opt=...).
const OptEndpointIfName = "com.docker.network.endpoint.ifname"

// endpointIfName reads and checks an endpoint's ifname option; "" when it
// is not set.
func endpointIfName(opts map[string]any) (string, error) {
	v, ok := opts[OptEndpointIfName]
	if !ok {
		return "", nil
	}
	name, err := parseString(OptEndpointIfName, v)
	if err != nil {
		return "", err
	}
	if err := validateIfName(OptEndpointIfName, name, netutil.MaxNameLen); err != nil {
		return "", err
	}
	return name, nil
}

// checkAdvertiseOption checks com.docker.network.advertise_addr_nmsgs (0 to
// 3 messages) or _ms (100 to 2000 ms between them) with Engine 29's limits
// and words.
func checkAdvertiseOption(key string, v any) error {
	s, err := parseString(key, v)
	if err != nil {
		return err
	}
	n, convErr := strconv.Atoi(s)
	lo, hi, what := 0, 3, "an integer"
	if key == OptAdvertiseMs {
		lo, hi, what = 100, 2000, "integer milliseconds"
	}
	switch {
	case convErr != nil:
		return errdefs.Invalid("value for option %s %q must be %s", key, s, what)
	case n < lo || n > hi:
		return errdefs.Invalid("%s must be in the range %d to %d", key, lo, hi)
	}
	return nil
}
