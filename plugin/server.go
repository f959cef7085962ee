package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/engineapi"
	"github.com/mynet/mynet/internal/errdefs"
)

// DefaultSocket is where the plain daemon serves (--socket): Docker finds
// a plugin by its socket in PluginsDir.
const DefaultSocket = PluginsDir + "/mynet.sock"

// PluginsDir is where Docker looks for plugins' sockets; a managed
// plugin's is in a directory of its own there, named by its ID.
const PluginsDir = "/run/docker/plugins"

// MaxBodyBytes caps a request body; Docker's requests are a few KiB.
const MaxBodyBytes = 1 << 20

// manifest is the answer to /Plugin.Activate.
var manifest = map[string][]string{"Implements": {"NetworkDriver", "IpamDriver"}}

// capabilities extends network.CapabilitiesResponse with GwAllocChecker:
// Docker 28 then asks /NetworkDriver.GwAllocCheck before allocating a
// network's addresses; Docker 20.10 ignores the field.
type capabilities struct {
	Scope             string
	ConnectivityScope string
	GwAllocChecker    bool
}

// NetworkDriver is what the plugin serves under /NetworkDriver.*:
// go-plugins-helpers' interface as Engine 29 has it: Docker 28's
// GwAllocCheck, and a Join that may name the container's interface.
type NetworkDriver interface {
	GetCapabilities() (*network.CapabilitiesResponse, error)
	GwAllocCheck(options map[string]any) (skipIPv4, skipIPv6 bool, err error)
	CreateNetwork(*network.CreateNetworkRequest) error
	AllocateNetwork(*network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error)
	DeleteNetwork(*network.DeleteNetworkRequest) error
	FreeNetwork(*network.FreeNetworkRequest) error
	CreateEndpoint(*network.CreateEndpointRequest) (*network.CreateEndpointResponse, error)
	DeleteEndpoint(*network.DeleteEndpointRequest) error
	EndpointInfo(*network.InfoRequest) (*network.InfoResponse, error)
	Join(*network.JoinRequest) (*engineapi.JoinResponse, error)
	Leave(*network.LeaveRequest) error
	DiscoverNew(*network.DiscoveryNotification) error
	DiscoverDelete(*network.DiscoveryNotification) error
	ProgramExternalConnectivity(*network.ProgramExternalConnectivityRequest) error
	RevokeExternalConnectivity(*network.RevokeExternalConnectivityRequest) error
}

type gwAllocCheckRequest struct {
	Options map[string]any
}

type gwAllocCheckResponse struct {
	SkipIPv4 bool
	SkipIPv6 bool
}

// Handler serves the plugin API for a network driver and an IPAM driver.
type Handler struct {
	mux     *http.ServeMux
	log     *logrus.Entry
	routes  map[string]bool
	observe func(call string, status int, kind string, took time.Duration)
}

// Extras are mynet's own routes beside Docker's, and what the handler
// reports about each call.
type Extras struct {
	// Health answers /mynet.Health with a report; a non-nil error means
	// unhealthy, answered with 503 and the report (which should carry the
	// error in its Err field, Docker's error form).
	Health func() (report any, err error)
	// Status answers /mynet.Status with what `mynet status` prints.
	Status func() any
	// Reconcile answers /mynet.Reconcile: it repairs the kernel now and
	// reports what it did.
	Reconcile func() (any, error)
	// RotateKey answers /mynet.RotateKey: this host's WireGuard key is
	// made anew (mynet cluster rotate-key).
	RotateKey func() (any, error)
	// Observe, when set, is told of every answered call: its path without
	// the leading slash, the HTTP status, the error kind ("" on success,
	// see errdefs.Kind) and how long it took.
	Observe func(call string, status int, kind string, took time.Duration)
}

// NewHandler builds the mux.
func NewHandler(drv NetworkDriver, alloc ipam.Ipam, extras Extras, log *logrus.Entry) *Handler {
	h := &Handler{mux: http.NewServeMux(), log: log, routes: map[string]bool{}, observe: extras.Observe}
	if h.log == nil {
		h.log = logrus.NewEntry(logrus.StandardLogger())
	}
	h.handle("/Plugin.Activate", func([]byte) (any, error) { return manifest, nil })

	// NetworkDriver.
	h.handle("/NetworkDriver.GetCapabilities", func([]byte) (any, error) {
		c, err := drv.GetCapabilities()
		if err != nil {
			return nil, err
		}
		return capabilities{Scope: c.Scope, ConnectivityScope: c.ConnectivityScope, GwAllocChecker: true}, nil
	})
	route(h, "/NetworkDriver.GwAllocCheck", func(req *gwAllocCheckRequest) (any, error) {
		skip4, skip6, err := drv.GwAllocCheck(req.Options)
		return gwAllocCheckResponse{SkipIPv4: skip4, SkipIPv6: skip6}, err
	})
	route(h, "/NetworkDriver.CreateNetwork", func(req *network.CreateNetworkRequest) (any, error) { return empty(drv.CreateNetwork(req)) })
	route(h, "/NetworkDriver.DeleteNetwork", func(req *network.DeleteNetworkRequest) (any, error) { return empty(drv.DeleteNetwork(req)) })
	route(h, "/NetworkDriver.AllocateNetwork", func(req *network.AllocateNetworkRequest) (any, error) { return drv.AllocateNetwork(req) })
	route(h, "/NetworkDriver.FreeNetwork", func(req *network.FreeNetworkRequest) (any, error) { return empty(drv.FreeNetwork(req)) })
	route(h, "/NetworkDriver.CreateEndpoint", func(req *network.CreateEndpointRequest) (any, error) { return drv.CreateEndpoint(req) })
	route(h, "/NetworkDriver.DeleteEndpoint", func(req *network.DeleteEndpointRequest) (any, error) { return empty(drv.DeleteEndpoint(req)) })
	route(h, "/NetworkDriver.EndpointOperInfo", func(req *network.InfoRequest) (any, error) { return drv.EndpointInfo(req) })
	route(h, "/NetworkDriver.Join", func(req *network.JoinRequest) (any, error) { return drv.Join(req) })
	route(h, "/NetworkDriver.Leave", func(req *network.LeaveRequest) (any, error) { return empty(drv.Leave(req)) })
	route(h, "/NetworkDriver.DiscoverNew", func(req *network.DiscoveryNotification) (any, error) { return empty(drv.DiscoverNew(req)) })
	route(h, "/NetworkDriver.DiscoverDelete", func(req *network.DiscoveryNotification) (any, error) { return empty(drv.DiscoverDelete(req)) })
	route(h, "/NetworkDriver.ProgramExternalConnectivity", func(req *network.ProgramExternalConnectivityRequest) (any, error) {
		return empty(drv.ProgramExternalConnectivity(req))
	})
	route(h, "/NetworkDriver.RevokeExternalConnectivity", func(req *network.RevokeExternalConnectivityRequest) (any, error) {
		return empty(drv.RevokeExternalConnectivity(req))
	})

	// IpamDriver.
	h.handle("/IpamDriver.GetCapabilities", func([]byte) (any, error) { return alloc.GetCapabilities() })
	h.handle("/IpamDriver.GetDefaultAddressSpaces", func([]byte) (any, error) { return alloc.GetDefaultAddressSpaces() })
	route(h, "/IpamDriver.RequestPool", func(req *ipam.RequestPoolRequest) (any, error) { return alloc.RequestPool(req) })
	route(h, "/IpamDriver.ReleasePool", func(req *ipam.ReleasePoolRequest) (any, error) { return empty(alloc.ReleasePool(req)) })
	route(h, "/IpamDriver.RequestAddress", func(req *ipam.RequestAddressRequest) (any, error) { return alloc.RequestAddress(req) })
	route(h, "/IpamDriver.ReleaseAddress", func(req *ipam.ReleaseAddressRequest) (any, error) { return empty(alloc.ReleaseAddress(req)) })

	if extras.Health != nil {
		h.routes["/mynet.Health"] = true
		h.mux.HandleFunc("/mynet.Health", func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			report, err := extras.Health()
			status := http.StatusOK
			if err != nil {
				status = http.StatusServiceUnavailable
				h.log.WithError(err).Warn("health check: unhealthy")
			}
			w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(report)
			h.done("mynet.Health", status, errdefs.Kind(err), start)
		})
	}
	if extras.Status != nil {
		h.handle("/mynet.Status", func([]byte) (any, error) { return extras.Status(), nil })
	}
	if extras.RotateKey != nil {
		h.handle("/mynet.RotateKey", func([]byte) (any, error) { return extras.RotateKey() })
	}
	if extras.Reconcile != nil {
		h.handle("/mynet.Reconcile", func([]byte) (any, error) { return extras.Reconcile() })
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, errdefs.NotFound("mynet does not implement %s", r.URL.Path))
	})
	return h
}

func empty(err error) (any, error) { return struct{}{}, err }

// route registers a call whose body decodes into T.
func route[T any](h *Handler, path string, fn func(*T) (any, error)) {
	h.handle(path, func(body []byte) (any, error) {
		req := new(T)
		if err := decode(body, req); err != nil {
			return nil, err
		}
		return fn(req)
	})
}

// decode reads one JSON object. Unknown fields are allowed (newer dockerd
// versions add some); an empty body is not: dockerd sends one when it
// retries a call that timed out.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errdefs.Invalid("request body is empty")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errdefs.Invalid("malformed request: %v", err)
	}
	return nil
}

// readBody reads at most MaxBodyBytes of the request.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errdefs.Invalid("request body is larger than %d bytes", MaxBodyBytes)
		}
		return nil, errdefs.Invalid("read request body: %v", err)
	}
	return body, nil
}

// handle registers a call; fn gets the request body (calls without
// arguments, such as Activate, ignore it).
func (h *Handler) handle(path string, fn func([]byte) (any, error)) {
	h.routes[path] = true
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, err := readBody(w, r)
		var res any
		if err == nil {
			h.log.WithFields(logrus.Fields{"call": path, "body": string(body)}).Debug("request")
			res, err = fn(body)
		}
		log := h.log.WithFields(logrus.Fields{"call": path, "duration": time.Since(start).Round(time.Microsecond)})
		defer func() { h.done(path[1:], errdefs.HTTPStatus(err), errdefs.Kind(err), start) }()
		if err != nil {
			log.WithError(err).Warn("call failed")
			h.writeError(w, r, err)
			return
		}
		log.Debug("call done")
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		if err := json.NewEncoder(w).Encode(res); err != nil {
			log.WithError(err).Warn("write response")
		}
	})
}

// done reports an answered call to the observer.
func (h *Handler) done(call string, status int, kind string, start time.Time) {
	if h.observe != nil {
		h.observe(call, status, kind, time.Since(start))
	}
}

// errorBody is Docker's error form. libnetwork's plugin client reads Err on
// any non-200 answer; its IPAM response types name the field Error.
type errorBody struct {
	Err   string
	Error string `json:",omitempty"`
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	body := errorBody{Err: err.Error()}
	if strings.HasPrefix(r.URL.Path, "/IpamDriver.") {
		body.Error = body.Err
	}
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	w.WriteHeader(errdefs.HTTPStatus(err))
	_ = json.NewEncoder(w).Encode(body)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Routes lists the paths the handler serves.
func (h *Handler) Routes() []string {
	out := make([]string, 0, len(h.routes))
	for p := range h.routes {
		out = append(out, p)
	}
	return out
}
