package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"

	"github.com/mynet/mynet/internal/netutil"
)

// floorDriver is the remote driver API's floor: a network driver that does
// only what dockerd needs to attach a container (a bridge per network, a
// veth per endpoint on it, the names at Join) and nothing else: no state,
// no firewall, no names, no locks beyond a map's. Served by the benchmark
// itself on its own socket, it is compared with Docker's bridge in the same
// rounds as mynet, so a row says how fast any remote driver can be on this
// engine and kernel, and mynet's distance from it is mynet's own cost.
type floorDriver struct {
	links *netutil.Links
	ln    net.Listener
	mu    sync.Mutex
	made  map[string]bool   // links this driver made and has not deleted
	gw    map[string]string // network ID: gateway address, for Join
}

const floor = "mynet-bench-floor" // its socket's name: the driver's name in docker network create -d

// startFloor serves the floor driver on /run/docker/plugins/mynet-bench-floor.sock.
func startFloor(links *netutil.Links) (*floorDriver, error) {
	sock := "/run/docker/plugins/" + floor + ".sock"
	if err := os.MkdirAll("/run/docker/plugins", 0o755); err != nil {
		return nil, err
	}
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("floor driver: %w", err)
	}
	f := &floorDriver{links: links, ln: ln, made: map[string]bool{}, gw: map[string]string{}}
	go func() { _ = http.Serve(ln, f) }()
	return f, nil
}

// stop closes the socket and deletes whatever links are left.
func (f *floorDriver) stop() {
	_ = f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for name := range f.made {
		_ = f.links.DeleteLink(name)
	}
}

func (f *floorDriver) track(name string, made bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if made {
		f.made[name] = true
	} else {
		delete(f.made, name)
	}
}

// The remote API's requests, as much of them as the floor reads.
type floorRequest struct {
	NetworkID  string
	EndpointID string
	IPv4Data   []struct{ Gateway string }
}

func floorBridge(networkID string) string { return "mf-" + short(networkID) }
func floorHost(endpointID string) string  { return "mfh" + short(endpointID) }
func floorPeer(endpointID string) string  { return "mfp" + short(endpointID) }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func (f *floorDriver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req floorRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	res, err := f.call(r.URL.Path, req)
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		res = map[string]string{"Err": err.Error()}
	}
	_ = json.NewEncoder(w).Encode(res)
}

func (f *floorDriver) call(path string, req floorRequest) (any, error) {
	empty := map[string]any{}
	switch path {
	case "/Plugin.Activate":
		return map[string][]string{"Implements": {"NetworkDriver"}}, nil
	case "/NetworkDriver.GetCapabilities":
		return map[string]string{"Scope": "local"}, nil
	case "/NetworkDriver.CreateNetwork":
		if len(req.IPv4Data) == 0 {
			return nil, errors.New("the floor driver needs an IPv4 subnet")
		}
		gw, err := netip.ParsePrefix(req.IPv4Data[0].Gateway)
		if err != nil {
			return nil, err
		}
		name := floorBridge(req.NetworkID)
		if _, err := f.links.EnsureBridge(netutil.BridgeConfig{Name: name, Addrs: []netip.Prefix{gw}}); err != nil {
			return nil, err
		}
		f.track(name, true)
		f.mu.Lock()
		f.gw[req.NetworkID] = gw.Addr().String()
		f.mu.Unlock()
		return empty, nil
	case "/NetworkDriver.DeleteNetwork":
		name := floorBridge(req.NetworkID)
		f.track(name, false)
		return empty, f.links.DeleteLink(name)
	case "/NetworkDriver.CreateEndpoint":
		host := floorHost(req.EndpointID)
		if err := f.links.AddVeth(netutil.VethConfig{HostName: host, PeerName: floorPeer(req.EndpointID), Bridge: floorBridge(req.NetworkID)}); err != nil {
			return nil, err
		}
		f.track(host, true)
		return empty, nil
	case "/NetworkDriver.DeleteEndpoint":
		host := floorHost(req.EndpointID)
		f.track(host, false)
		return empty, f.links.DeleteLink(host)
	case "/NetworkDriver.Join":
		// A gateway, as mynet and the bridge give.
		f.mu.Lock()
		gw := f.gw[req.NetworkID]
		f.mu.Unlock()
		return map[string]any{"InterfaceName": map[string]string{"SrcName": floorPeer(req.EndpointID), "DstPrefix": "eth"}, "Gateway": gw}, nil
	case "/NetworkDriver.EndpointOperInfo":
		return map[string]any{"Value": empty}, nil
	case "/NetworkDriver.Leave", "/NetworkDriver.DiscoverNew", "/NetworkDriver.DiscoverDelete",
		"/NetworkDriver.ProgramExternalConnectivity", "/NetworkDriver.RevokeExternalConnectivity":
		return empty, nil
	}
	return nil, fmt.Errorf("the floor driver does not answer %s", path)
}
