package integration

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// hostileCase is one bad request and what must come back.
type hostileCase struct {
	name   string
	path   string
	body   string
	status int
	errKey string // the error field that must be set: Err, and for IPAM also Error
}

func hostileCases() []hostileCase {
	const net = `"NetworkID":"ababababababababababababababababababababababababababababababab01"`
	ipv4 := `"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.70.0.0/24","Gateway":"10.70.0.1/24"}]`
	create := func(opts string) string {
		return `{` + net + `,"Options":{"com.docker.network.generic":{` + opts + `}},` + ipv4 + `}`
	}
	return []hostileCase{
		{"malformed JSON", "/NetworkDriver.CreateNetwork", `{"NetworkID":`, 400, "Err"},
		{"empty body (dockerd's timeout retry)", "/NetworkDriver.CreateEndpoint", ``, 400, "Err"},
		{"JSON null", "/NetworkDriver.Join", `null`, 400, "Err"},
		{"wrong type", "/NetworkDriver.CreateNetwork", `{"NetworkID":7}`, 400, "Err"},
		{"array body", "/IpamDriver.RequestPool", `[]`, 400, "Error"},
		{"missing network ID", "/NetworkDriver.CreateNetwork", `{"Options":{}}`, 400, "Err"},
		{"unknown network", "/NetworkDriver.CreateEndpoint", `{"NetworkID":"cdcdcdcdcdcdcdcdcdcd","EndpointID":"efefefefefefefefefef","Interface":{"Address":"10.70.0.2/24"}}`, 404, "Err"},
		{"unknown endpoint join", "/NetworkDriver.Join", `{"NetworkID":"cdcdcdcdcdcdcdcdcdcd","EndpointID":"efefefefefefefefefef"}`, 404, "Err"},
		{"unknown endpoint info", "/NetworkDriver.EndpointOperInfo", `{"NetworkID":"cdcdcdcdcdcdcdcdcdcd","EndpointID":"efefefefefefefefefef"}`, 404, "Err"},
		{"ID with ../", "/NetworkDriver.CreateNetwork", `{"NetworkID":"../../../../etc/passwd","Options":{},` + ipv4 + `}`, 400, "Err"},
		{"ID with spaces", "/NetworkDriver.DeleteNetwork", `{"NetworkID":"abc def ghi jkl mno"}`, 400, "Err"},
		{"bridge name with space", "/NetworkDriver.CreateNetwork", create(`"com.docker.network.bridge.name":"br -j ACCEPT"`), 400, "Err"},
		{"bridge name with dash-option", "/NetworkDriver.CreateNetwork", create(`"com.docker.network.bridge.name":"--flush"`), 400, "Err"},
		{"bridge name 16 bytes", "/NetworkDriver.CreateNetwork", create(`"com.docker.network.bridge.name":"abcdefghijklmnop"`), 400, "Err"},
		{"bridge name ../", "/NetworkDriver.CreateNetwork", create(`"com.docker.network.bridge.name":"../x"`), 400, "Err"},
		{"prefix with quote", "/NetworkDriver.CreateNetwork", create(`"com.docker.network.container_iface_prefix":"e\"th"`), 400, "Err"},
		{"mtu text", "/NetworkDriver.CreateNetwork", create(`"com.docker.network.driver.mtu":"abc"`), 400, "Err"},
		{"mtu huge", "/NetworkDriver.CreateNetwork", create(`"com.docker.network.driver.mtu":"99999999"`), 400, "Err"},
		{"host_ipv4 injection", "/NetworkDriver.CreateNetwork", create(`"com.docker.network.host_ipv4":"1.2.3.4 -j ACCEPT"`), 400, "Err"},
		{"invalid CIDR", "/NetworkDriver.CreateNetwork", `{` + net + `,"IPv4Data":[{"Pool":"10.0.0.0/33","Gateway":"10.0.0.1"}]}`, 400, "Err"},
		{"gateway outside", "/NetworkDriver.CreateNetwork", `{` + net + `,"IPv4Data":[{"Pool":"10.71.0.0/24","Gateway":"10.9.9.9/24"}]}`, 400, "Err"},
		{"IPAM invalid CIDR", "/IpamDriver.RequestPool", `{"Pool":"300.0.0.0/8"}`, 400, "Error"},
		{"IPAM range outside", "/IpamDriver.RequestPool", `{"Pool":"10.72.0.0/24","SubPool":"10.73.0.0/25"}`, 400, "Error"},
		{"IPAM unknown pool", "/IpamDriver.RequestAddress", `{"PoolID":"LocalDefault/10.99.99.0/24"}`, 404, "Error"},
		{"IPAM malformed pool ID", "/IpamDriver.RequestAddress", `{"PoolID":"; rm -rf /"}`, 400, "Error"},
		{"IPAM address garbage", "/IpamDriver.ReleaseAddress", `{"PoolID":"LocalDefault/10.99.99.0/24","Address":"not-an-ip"}`, 400, "Error"},
		{"portmap garbage", "/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"cdcdcdcdcdcdcdcdcdcd","EndpointID":"efefefefefefefefefef","Options":{"com.docker.network.portmap":"x"}}`, 404, "Err"},
		{"unknown route", "/NetworkDriver.Explode", `{}`, 404, "Err"},
		{"huge body", "/NetworkDriver.CreateNetwork", `{"NetworkID":"` + strings.Repeat("a", 2<<20) + `"}`, 400, "Err"},
	}
}

// TestHostileInput sends each bad request to the live daemon: each gets
// Docker's error form with the right status, the daemon survives, and
// nothing changes in the kernel or the state.
func TestHostileInput(t *testing.T) {
	d := newDaemon(t)
	d.start()
	// Some state to keep unchanged: a network with an endpoint.
	pool := d.call("/IpamDriver.RequestPool", map[string]any{"Pool": "10.74.0.0/24"})["PoolID"].(string)
	d.call("/IpamDriver.RequestAddress", map[string]any{"PoolID": pool, "Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
	d.call("/NetworkDriver.CreateNetwork", map[string]any{"NetworkID": crashNet, "IPv4Data": []map[string]any{{"Pool": "10.74.0.0/24", "Gateway": "10.74.0.1/24"}}})
	d.call("/NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": crashNet, "EndpointID": crashEp1, "Interface": map[string]string{"Address": "10.74.0.2/24"}})
	// Exhaust a small pool, then ask once more, and overlap the first.
	small := d.call("/IpamDriver.RequestPool", map[string]any{"Pool": "10.75.0.0/30"})["PoolID"].(string)
	for range 2 {
		d.call("/IpamDriver.RequestAddress", map[string]any{"PoolID": small})
	}
	cases := append(hostileCases(),
		hostileCase{"exhausted pool", "/IpamDriver.RequestAddress", `{"PoolID":"` + small + `"}`, 409, "Error"},
		hostileCase{"overlapping pool", "/IpamDriver.RequestPool", `{"Pool":"10.74.0.128/25"}`, 409, "Error"},
		hostileCase{"overlapping network", "/NetworkDriver.CreateNetwork",
			`{"NetworkID":"ababababababababababababababababababababababababababababababab02","IPv4Data":[{"Pool":"10.74.0.0/16","Gateway":"10.74.0.1/16"}]}`, 409, "Err"},
		hostileCase{"address in use", "/IpamDriver.RequestAddress", `{"PoolID":"` + pool + `","Address":"10.74.0.1"}`, 409, "Error"},
	)
	linksBefore, rulesBefore := mynetLinks(t), allTaggedRules(t)
	statusBefore, _ := json.Marshal(d.call("/mynet.Status", map[string]any{}))
	for _, tc := range cases {
		code, out, err := d.raw(tc.path, []byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v (did the daemon die?)\n%s", tc.name, err, tail(d.log.String(), 2000))
		}
		msg, _ := out[tc.errKey].(string)
		if code != tc.status || msg == "" {
			t.Errorf("%s: status %d %v, want %d with %s", tc.name, code, out, tc.status, tc.errKey)
		}
	}
	if got := mynetLinks(t); !slices.Equal(got, linksBefore) {
		t.Errorf("links changed: %v -> %v", linksBefore, got)
	}
	if got := allTaggedRules(t); !slices.Equal(got, rulesBefore) {
		t.Errorf("rules changed:\n%v\n->\n%v", rulesBefore, got)
	}
	statusAfter, _ := json.Marshal(d.call("/mynet.Status", map[string]any{}))
	if string(statusAfter) != string(statusBefore) {
		t.Errorf("state changed:\n%s\n->\n%s", statusBefore, statusAfter)
	}
	if code, _, err := d.raw("/mynet.Health", nil); err != nil || code != http.StatusOK {
		t.Errorf("daemon unhealthy after the hostile table: %d %v", code, err)
	}
	t.Logf("hostile input: %d bad requests, each answered with its error and status; no state change", len(cases))
}
