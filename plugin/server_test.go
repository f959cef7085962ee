package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/mynet/mynet/internal/engineapi"
	"github.com/mynet/mynet/internal/errdefs"
)

// fakeDriver answers every NetworkDriver call; IDs starting with "missing"
// are unknown and "bad" network IDs are invalid.
type fakeDriver struct{ calls []string }

var _ NetworkDriver = (*fakeDriver)(nil)

func (f *fakeDriver) GwAllocCheck(opts map[string]any) (bool, bool, error) {
	f.calls = append(f.calls, "GwAllocCheck")
	if _, bad := opts["bad"]; bad {
		return false, false, errdefs.Invalid("option bad is bad")
	}
	return true, false, nil
}

func (f *fakeDriver) check(call, id string) error {
	f.calls = append(f.calls, call)
	switch {
	case strings.HasPrefix(id, "missing"):
		return errdefs.NotFound("network %s not found", id)
	case strings.HasPrefix(id, "bad"):
		return errdefs.Invalid("invalid network ID %q", id)
	case strings.HasPrefix(id, "dup"):
		return errdefs.Conflict("subnet overlaps")
	}
	return nil
}

func (f *fakeDriver) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: "local", ConnectivityScope: "local"}, nil
}
func (f *fakeDriver) CreateNetwork(r *network.CreateNetworkRequest) error {
	return f.check("CreateNetwork", r.NetworkID)
}
func (f *fakeDriver) AllocateNetwork(r *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return &network.AllocateNetworkResponse{}, f.check("AllocateNetwork", r.NetworkID)
}
func (f *fakeDriver) DeleteNetwork(r *network.DeleteNetworkRequest) error {
	return f.check("DeleteNetwork", r.NetworkID)
}
func (f *fakeDriver) FreeNetwork(r *network.FreeNetworkRequest) error {
	return f.check("FreeNetwork", r.NetworkID)
}
func (f *fakeDriver) CreateEndpoint(r *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	if err := f.check("CreateEndpoint", r.NetworkID); err != nil {
		return nil, err
	}
	return &network.CreateEndpointResponse{Interface: &network.EndpointInterface{MacAddress: "02:42:00:00:00:01"}}, nil
}
func (f *fakeDriver) DeleteEndpoint(r *network.DeleteEndpointRequest) error {
	return f.check("DeleteEndpoint", r.NetworkID)
}
func (f *fakeDriver) EndpointInfo(r *network.InfoRequest) (*network.InfoResponse, error) {
	if err := f.check("EndpointOperInfo", r.NetworkID); err != nil {
		return nil, err
	}
	return &network.InfoResponse{Value: map[string]string{"mac": "02:42:00:00:00:01"}}, nil
}
func (f *fakeDriver) Join(r *network.JoinRequest) (*engineapi.JoinResponse, error) {
	if err := f.check("Join", r.NetworkID); err != nil {
		return nil, err
	}
	return &engineapi.JoinResponse{InterfaceName: engineapi.InterfaceName{SrcName: "mncx", DstPrefix: "eth"}, Gateway: "10.0.0.1"}, nil
}
func (f *fakeDriver) Leave(r *network.LeaveRequest) error { return f.check("Leave", r.NetworkID) }
func (f *fakeDriver) DiscoverNew(*network.DiscoveryNotification) error {
	return f.check("DiscoverNew", "")
}
func (f *fakeDriver) DiscoverDelete(*network.DiscoveryNotification) error {
	return f.check("DiscoverDelete", "")
}
func (f *fakeDriver) ProgramExternalConnectivity(r *network.ProgramExternalConnectivityRequest) error {
	return f.check("ProgramExternalConnectivity", r.NetworkID)
}
func (f *fakeDriver) RevokeExternalConnectivity(r *network.RevokeExternalConnectivityRequest) error {
	return f.check("RevokeExternalConnectivity", r.NetworkID)
}

type fakeIpam struct{}

var _ ipam.Ipam = fakeIpam{}

func (fakeIpam) GetCapabilities() (*ipam.CapabilitiesResponse, error) {
	return &ipam.CapabilitiesResponse{}, nil
}
func (fakeIpam) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	return &ipam.AddressSpacesResponse{LocalDefaultAddressSpace: "LocalDefault", GlobalDefaultAddressSpace: "GlobalDefault"}, nil
}
func (fakeIpam) RequestPool(r *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	if r.Pool == "full" {
		return nil, errdefs.Conflict("all default address pools are in use")
	}
	return &ipam.RequestPoolResponse{PoolID: "LocalDefault/" + r.Pool, Pool: r.Pool}, nil
}
func (fakeIpam) ReleasePool(*ipam.ReleasePoolRequest) error { return nil }
func (fakeIpam) RequestAddress(r *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	if r.PoolID == "missing" {
		return nil, errdefs.NotFound("address pool missing not found")
	}
	return &ipam.RequestAddressResponse{Address: "10.0.0.2/24"}, nil
}
func (fakeIpam) ReleaseAddress(*ipam.ReleaseAddressRequest) error { return nil }

// serve runs the handler on a real unix socket, as dockerd sees it.
func serve(t *testing.T) (*Client, *fakeDriver) {
	c, drv, _ := serveWith(t, Extras{})
	return c, drv
}

// fakeExtras answers health from a switch and records observed calls.
type fakeExtras struct {
	mu       sync.Mutex
	sick     error
	observed []string // "call status kind"
}

func (f *fakeExtras) extras() Extras {
	return Extras{
		Status: func() any { return map[string]int{"Networks": 0} },
		Health: func() (any, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.sick != nil {
				return map[string]string{"Status": "unhealthy", "Err": f.sick.Error()}, f.sick
			}
			return map[string]string{"Status": "ok"}, nil
		},
		Observe: func(call string, status int, kind string, took time.Duration) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.observed = append(f.observed, fmt.Sprintf("%s %d %s", call, status, kind))
		},
	}
}

func serveWith(t *testing.T, extras Extras) (*Client, *fakeDriver, *fakeExtras) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mynet.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	drv := &fakeDriver{}
	fx := &fakeExtras{}
	if extras.Status == nil {
		extras = fx.extras()
	}
	srv := &http.Server{Handler: NewHandler(drv, fakeIpam{}, extras, nil)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock, 10*time.Second), drv, fx
}

func post(t *testing.T, c *Client, path string, body []byte) (int, map[string]any) {
	t.Helper()
	code, raw, err := c.Post(path, body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s answered non-JSON %q (status %d)", path, raw, code)
	}
	return code, out
}

func TestActivateAndCapabilities(t *testing.T) {
	t.Parallel()
	c, _ := serve(t)
	code, out := post(t, c, "/Plugin.Activate", nil)
	impl, _ := json.Marshal(out["Implements"])
	if code != 200 || string(impl) != `["NetworkDriver","IpamDriver"]` {
		t.Errorf("Activate = %d %v", code, out)
	}
	code, out = post(t, c, "/NetworkDriver.GetCapabilities", nil)
	if code != 200 || out["Scope"] != "local" || out["ConnectivityScope"] != "local" || out["GwAllocChecker"] != true {
		t.Errorf("GetCapabilities = %d %v", code, out)
	}
	code, out = post(t, c, "/IpamDriver.GetDefaultAddressSpaces", nil)
	if code != 200 || out["LocalDefaultAddressSpace"] != "LocalDefault" {
		t.Errorf("GetDefaultAddressSpaces = %d %v", code, out)
	}
	code, out = post(t, c, "/mynet.Health", nil)
	if code != 200 || out["Status"] != "ok" {
		t.Errorf("Health = %d %v", code, out)
	}
	code, out = post(t, c, "/mynet.Status", nil)
	if code != 200 || out["Networks"] != 0.0 {
		t.Errorf("Status = %d %v", code, out)
	}
}

// Health answers 503 with the report while the daemon is unhealthy, and
// every call, failed or not, reaches the observer with its status and kind.
func TestHealthCanFailAndCallsAreObserved(t *testing.T) {
	t.Parallel()
	c, _, fx := serveWith(t, Extras{})
	if code, out := post(t, c, "/mynet.Health", nil); code != 200 || out["Status"] != "ok" {
		t.Errorf("healthy: Health = %d %v", code, out)
	}
	fx.mu.Lock()
	fx.sick = errors.New("state file not writable")
	fx.mu.Unlock()
	if code, out := post(t, c, "/mynet.Health", nil); code != 503 || out["Err"] != "state file not writable" {
		t.Errorf("unhealthy: Health = %d %v, want 503 with Err", code, out)
	}
	post(t, c, "/NetworkDriver.CreateNetwork", []byte(`{"NetworkID":"n1","Options":{},"IPv4Data":[{"Pool":"10.0.0.0/24","Gateway":"10.0.0.1/24"}]}`))
	post(t, c, "/NetworkDriver.DeleteNetwork", []byte(`{`))
	post(t, c, "/NetworkDriver.Nope", []byte(`{}`))
	fx.mu.Lock()
	defer fx.mu.Unlock()
	want := []string{
		"mynet.Health 200 ", "mynet.Health 503 internal",
		"NetworkDriver.CreateNetwork 200 ", "NetworkDriver.DeleteNetwork 400 invalid",
	}
	if !slices.Equal(fx.observed, want) {
		t.Errorf("observed %q, want %q (unknown paths are not observed)", fx.observed, want)
	}
}

// Every route with a body: a good call succeeds, and malformed JSON, an
// empty body, a wrong type and an unknown object each get the right status
// with Docker's error field.
func TestEveryRoute(t *testing.T) {
	t.Parallel()
	c, drv := serve(t)
	routes := []struct {
		path string
		good string
	}{
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"n1","Options":{},"IPv4Data":[{"Pool":"10.0.0.0/24","Gateway":"10.0.0.1/24"}]}`},
		{"/NetworkDriver.DeleteNetwork", `{"NetworkID":"n1"}`},
		{"/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.internal":true}}`},
		{"/NetworkDriver.AllocateNetwork", `{"NetworkID":"n1"}`},
		{"/NetworkDriver.FreeNetwork", `{"NetworkID":"n1"}`},
		{"/NetworkDriver.CreateEndpoint", `{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"10.0.0.2/24"}}`},
		{"/NetworkDriver.DeleteEndpoint", `{"NetworkID":"n1","EndpointID":"e1"}`},
		{"/NetworkDriver.EndpointOperInfo", `{"NetworkID":"n1","EndpointID":"e1"}`},
		{"/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/x"}`},
		{"/NetworkDriver.Leave", `{"NetworkID":"n1","EndpointID":"e1"}`},
		{"/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{}}`},
		{"/NetworkDriver.DiscoverDelete", `{"DiscoveryType":1,"DiscoveryData":{}}`},
		{"/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"n1","EndpointID":"e1","Options":{}}`},
		{"/NetworkDriver.RevokeExternalConnectivity", `{"NetworkID":"n1","EndpointID":"e1"}`},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"LocalDefault","Pool":"10.0.0.0/24"}`},
		{"/IpamDriver.ReleasePool", `{"PoolID":"LocalDefault/10.0.0.0/24"}`},
		{"/IpamDriver.RequestAddress", `{"PoolID":"LocalDefault/10.0.0.0/24"}`},
		{"/IpamDriver.ReleaseAddress", `{"PoolID":"LocalDefault/10.0.0.0/24","Address":"10.0.0.2"}`},
	}
	for _, r := range routes {
		t.Run(r.path, func(t *testing.T) {
			if code, out := post(t, c, r.path, []byte(r.good)); code != 200 || out["Err"] != nil {
				t.Errorf("good request: %d %v", code, out)
			}
			for name, body := range map[string]string{
				"malformed":  `{"NetworkID":`,
				"empty":      ``,
				"wrong type": `{"NetworkID":42,"PoolID":42,"Pool":42,"DiscoveryType":"x","Options":7}`,
				"string":     `"CreateNetwork"`,
				"not object": `[1,2,3]`,
			} {
				code, out := post(t, c, r.path, []byte(body))
				if code != 400 || out["Err"] == nil || out["Err"] == "" {
					t.Errorf("%s body: %d %v, want 400 with Err", name, code, out)
				}
				if strings.HasPrefix(r.path, "/IpamDriver.") && out["Error"] != out["Err"] {
					t.Errorf("%s body: IPAM error lacks the Error field: %v", name, out)
				}
			}
		})
	}
	if len(drv.calls) != 14 {
		t.Errorf("driver saw %d calls, want 14 (bad requests must not reach it): %v", len(drv.calls), drv.calls)
	}
}

func TestErrorKindsBecomeStatuses(t *testing.T) {
	t.Parallel()
	c, _ := serve(t)
	tests := []struct {
		path, body string
		want       int
	}{
		{"/NetworkDriver.Join", `{"NetworkID":"missing1","EndpointID":"e"}`, 404},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"bad id"}`, 400},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"dup"}`, 409},
		{"/NetworkDriver.GwAllocCheck", `{"Options":{"bad":1}}`, 400},
		{"/IpamDriver.RequestAddress", `{"PoolID":"missing"}`, 404},
		{"/IpamDriver.RequestPool", `{"Pool":"full"}`, 409},
		{"/NetworkDriver.NoSuchCall", `{}`, 404},
		{"/", ``, 404},
	}
	for _, tt := range tests {
		code, out := post(t, c, tt.path, []byte(tt.body))
		if code != tt.want || out["Err"] == nil {
			t.Errorf("%s %s: %d %v, want %d with Err", tt.path, tt.body, code, out, tt.want)
		}
	}
}

func TestHugeBodyIsRefused(t *testing.T) {
	t.Parallel()
	c, drv := serve(t)
	body := []byte(`{"NetworkID":"` + strings.Repeat("a", MaxBodyBytes+10) + `"}`)
	code, out := post(t, c, "/NetworkDriver.CreateNetwork", body)
	if code != 400 || !strings.Contains(out["Err"].(string), "larger than") {
		t.Errorf("huge body: %d %v", code, out)
	}
	if len(drv.calls) != 0 {
		t.Errorf("huge body reached the driver")
	}
}

func TestListenSocketModeStaleAndLive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "p.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode = %v, want a 0600 socket", st.Mode())
	}
	// A live socket is not taken over.
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	// A stale one (nobody listening) is replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
	// A regular file in the way is not deleted.
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil {
		t.Error("Listen replaced a regular file")
	}
}

func FuzzDecodeRequests(f *testing.F) {
	f.Add([]byte(`{"NetworkID":"n","Options":{"com.docker.network.generic":{"a":"b"}},"IPv4Data":[{"Pool":"10.0.0.0/24"}]}`))
	f.Add([]byte(`{"PoolID":"LocalDefault/10.0.0.0/24","Address":"10.0.0.1"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var a network.CreateNetworkRequest
		var b network.CreateEndpointRequest
		var c ipam.RequestPoolRequest
		var d ipam.RequestAddressRequest
		for _, v := range []any{&a, &b, &c, &d} {
			err := decode(body, v)
			if err != nil && !errdefs.IsInvalid(err) {
				t.Errorf("decode error of the wrong kind: %v", err)
			}
		}
	})
}

// The client decodes answers and turns Docker's error form into an error.
func TestClientCall(t *testing.T) {
	t.Parallel()
	c, _ := serve(t)
	var caps map[string]any
	if err := c.Call("/NetworkDriver.GetCapabilities", struct{}{}, &caps); err != nil || caps["Scope"] != "local" {
		t.Errorf("Call GetCapabilities = %v, %v", caps, err)
	}
	err := c.Call("/NetworkDriver.DeleteNetwork", []byte(`{`), nil)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "malformed request") {
		t.Errorf("Call with a bad body = %v, want the 400 and its Err", err)
	}
	if err := NewClient(filepath.Join(t.TempDir(), "none.sock"), time.Second).Call("/Plugin.Activate", nil, nil); err == nil {
		t.Error("Call to a socket nobody serves succeeded")
	}
}
