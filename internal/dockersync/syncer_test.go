package dockersync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/poll"
)

// fakeEngine is a Docker that keeps networks in memory. A network of
// driver "mynet" with the cluster option is the local driver's (Local).
type fakeEngine struct {
	mu       sync.Mutex
	nets     map[string]Network
	users    map[string]int // containers per network ID
	down     bool
	nextID   int
	calls    int
	refuse   error                 // Create fails with it
	tries    int                   // Create calls
	eps      map[string][]Endpoint // network ID -> its endpoints
	aliases  map[string][]string   // container -> its DNS names besides its name
	inspects int                   // Aliases calls
	// driver is the local driver's name in this Docker ("mynet"; a
	// managed plugin's reference), plugins the plugins' names by ID.
	driver  string
	plugins map[string]string
}

func (e *fakeEngine) creates() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tries
}

var _ Engine = (*fakeEngine)(nil)

func newFakeEngine() *fakeEngine {
	return &fakeEngine{nets: map[string]Network{}, users: map[string]int{}, eps: map[string][]Endpoint{}, aliases: map[string][]string{},
		driver: "mynet", plugins: map[string]string{}}
}

func (e *fakeEngine) Networks(context.Context) ([]Network, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if e.down {
		return nil, errors.New("Cannot connect to the Docker daemon")
	}
	var out []Network
	for _, n := range e.nets {
		out = append(out, n)
	}
	return out, nil
}

func (e *fakeEngine) Create(_ context.Context, n Network) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tries++
	if e.down {
		return "", errors.New("Cannot connect to the Docker daemon")
	}
	if e.refuse != nil {
		return "", e.refuse
	}
	for _, o := range e.nets {
		if o.Name == n.Name {
			return "", fmt.Errorf("network with name %s already exists", n.Name)
		}
	}
	e.nextID++
	n.ID = fmt.Sprintf("id%d", e.nextID)
	e.nets[n.ID] = n
	return n.ID, nil
}

func (e *fakeEngine) Remove(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.users[id] > 0 {
		return ErrInUse
	}
	delete(e.nets, id)
	return nil
}

func (e *fakeEngine) Containers(_ context.Context, id string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.users[id], nil
}

func (e *fakeEngine) Close() error { return nil }

func (e *fakeEngine) Endpoints(_ context.Context, id string) ([]Endpoint, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.eps[id]), nil
}

func (e *fakeEngine) PluginName(_ context.Context, id string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return "", errors.New("Cannot connect to the Docker daemon")
	}
	name, ok := e.plugins[id]
	if !ok {
		return "", fmt.Errorf("Error: No such plugin: %s", id)
	}
	return name, nil
}

func (e *fakeEngine) Aliases(_ context.Context, container, _ string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inspects++
	return slices.Clone(e.aliases[container]), nil
}

// userCreate is `docker network create` by a user on this engine.
func (e *fakeEngine) userCreate(t *testing.T, name, clusterName string, subnet string) string {
	t.Helper()
	id, err := e.Create(t.Context(), Network{Name: name, Driver: "mynet", IPAMDriver: "mynet",
		IPAMOptions: map[string]string{optCluster: clusterName}, Subnet: netip.MustParsePrefix(subnet),
		Gateway: netip.MustParsePrefix(subnet).Addr().Next(), Options: map[string]string{"com.docker.network.driver.mtu": "1400"}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *fakeEngine) byName(name string) (Network, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.nets {
		if n.Name == name {
			return n, true
		}
	}
	return Network{}, false
}

func (e *fakeEngine) remove(name string) error {
	n, ok := e.byName(name)
	if !ok {
		return errors.New("no such network")
	}
	return e.Remove(context.Background(), n.ID)
}

func (e *fakeEngine) setUsers(name string, count int) {
	n, _ := e.byName(name)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users[n.ID] = count
}

func (e *fakeEngine) local() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for id, n := range e.nets {
		if c := n.IPAMOptions[optCluster]; c != "" && n.Driver == e.driver {
			out[id] = c
		}
	}
	return out
}

type syncHost struct {
	engine *fakeEngine
	client *cluster.Client
	syncer *Syncer
}

// syncHosts starts n hosts' syncers on one in-memory cluster; each host's
// LeaveNetwork runs when its engine no longer has a cluster network (what
// the IPAM's ReleasePool does).
func syncHosts(t *testing.T, n int, opts ...func(i int, e *fakeEngine, c *Config)) []*syncHost {
	t.Helper()
	mem := cluster.NewMemory()
	var out []*syncHost
	for i := range n {
		c := cluster.NewWithStore(mem, cluster.Config{Node: fmt.Sprintf("host%d", i+1),
			Advertise: netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)}), CallTimeout: time.Second})
		if _, _, err := c.Register(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
		e := newFakeEngine()
		h := &syncHost{engine: e, client: c}
		cfg := Config{Engine: e, Cluster: c, Local: e.local, Driver: "mynet", Every: 20 * time.Millisecond}
		for _, o := range opts {
			o(i, e, &cfg)
		}
		h.syncer = New(cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); h.syncer.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		out = append(out, h)
	}
	return out
}

// join is what a host's IPAM and driver do when its Docker creates a
// cluster network: the cluster's configuration, and this host's record.
func (h *syncHost) join(t *testing.T, name, subnet string) {
	t.Helper()
	if _, err := h.client.EnsureNetwork(name, netip.MustParsePrefix(subnet), netip.Addr{}, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.client.JoinNetwork(name); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	poll.Eventually(t, what, 5*time.Second, cond)
}

// waitPasses waits for n whole passes of s that began after the call.
func waitPasses(t *testing.T, s *Syncer, n int) {
	t.Helper()
	for range n + 1 {
		since := time.Now()
		eventually(t, "a pass", func() error {
			if !s.Status().LastPass.After(since) {
				return errors.New("no pass yet")
			}
			return nil
		})
	}
}

func stateOf(s *Syncer, c string) NetworkStatus {
	for _, n := range s.Status().Networks {
		if n.Cluster == c {
			return n
		}
	}
	return NetworkStatus{}
}

func TestNetworkCreatedOnOneHostAppearsOnAll(t *testing.T) {
	h := syncHosts(t, 3)
	h[0].join(t, "ov1", "10.0.0.0/24")
	h[0].engine.userCreate(t, "ov_net1", "ov1", "10.0.0.0/24")
	want, _ := h[0].engine.byName("ov_net1")
	for i, x := range h[1:] {
		eventually(t, fmt.Sprintf("host%d has ov_net1", i+2), func() error {
			n, ok := x.engine.byName("ov_net1")
			if !ok {
				return errors.New("absent")
			}
			if n.Driver != "mynet" || n.IPAMDriver != "mynet" || n.Subnet != want.Subnet || n.Gateway != want.Gateway ||
				!maps.Equal(n.IPAMOptions, want.IPAMOptions) || !maps.Equal(n.Options, want.Options) {
				return fmt.Errorf("got %+v, want like %+v", n, want)
			}
			return nil
		})
	}
	// The pass that created it reports once it ends (a fresh CI run read
	// the state between the create and the report).
	eventually(t, "host2's state of ov1", func() error {
		if st := stateOf(h[1].syncer, "ov1"); st.State != "created" && st.State != "present" {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
}

// A dual-stack network with ranges: the other hosts' copies have its
// IPv6 subnet and gateway and both ranges.
func TestDualStackNetworkIsSyncedWhole(t *testing.T) {
	h := syncHosts(t, 2)
	h[0].join(t, "ov6", "10.0.6.0/24")
	if _, err := h[0].engine.Create(t.Context(), Network{Name: "ov_net6", Driver: "mynet", IPAMDriver: "mynet",
		IPAMOptions: map[string]string{optCluster: "ov6"}, Subnet: netip.MustParsePrefix("10.0.6.0/24"), Gateway: netip.MustParseAddr("10.0.6.1"),
		IPRange: netip.MustParsePrefix("10.0.6.128/25"), EnableIPv6: true, Subnet6: netip.MustParsePrefix("fd00:6::/64"),
		Gateway6: netip.MustParseAddr("fd00:6::1"), IPRange6: netip.MustParsePrefix("fd00:6::/80")}); err != nil {
		t.Fatal(err)
	}
	want, _ := h[0].engine.byName("ov_net6")
	eventually(t, "host2 has ov_net6 with its IPv6", func() error {
		n, ok := h[1].engine.byName("ov_net6")
		if !ok {
			return errors.New("absent")
		}
		if !n.EnableIPv6 || n.Subnet6 != want.Subnet6 || n.Gateway6 != want.Gateway6 || n.IPRange != want.IPRange || n.IPRange6 != want.IPRange6 {
			return fmt.Errorf("got %+v, want like %+v", n, want)
		}
		return nil
	})
}

// An IPv6-only network: the other hosts' copies are IPv6-only too.
func TestIPv6OnlyNetworkIsSynced(t *testing.T) {
	h := syncHosts(t, 2)
	h[0].join(t, "ov7", "10.0.7.0/24")
	if _, err := h[0].engine.Create(t.Context(), Network{Name: "ov_net7", Driver: "mynet", IPAMDriver: "mynet",
		IPAMOptions: map[string]string{optCluster: "ov7"}, NoIPv4: true, EnableIPv6: true,
		Subnet6: netip.MustParsePrefix("fd00:7::/64"), Gateway6: netip.MustParseAddr("fd00:7::1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "host2 has ov_net7, IPv6-only", func() error {
		n, ok := h[1].engine.byName("ov_net7")
		if !ok {
			return errors.New("absent")
		}
		if !n.NoIPv4 || n.Subnet.IsValid() || n.Subnet6.String() != "fd00:7::/64" {
			return fmt.Errorf("got %+v", n)
		}
		return nil
	})
}

// inUseOnHost2 is ov_net1 created by a user on host1, synced to host2, and
// used there by a container.
func inUseOnHost2(t *testing.T, h []*syncHost) {
	t.Helper()
	h[0].join(t, "ov1", "10.0.0.0/24")
	h[0].engine.userCreate(t, "ov_net1", "ov1", "10.0.0.0/24")
	eventually(t, "host2 has ov_net1", func() error {
		if _, ok := h[1].engine.byName("ov_net1"); !ok {
			return errors.New("absent")
		}
		return nil
	})
	h[1].join(t, "ov1", "10.0.0.0/24")
	h[1].engine.setUsers("ov_net1", 1)
}

func TestRemovalFollowsWhereUnused(t *testing.T) {
	h := syncHosts(t, 2)
	inUseOnHost2(t, h)
	// A user removes it on host1; host1's IPAM leaves the network.
	if err := h[0].engine.remove("ov_net1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h[0].client.LeaveNetwork("ov1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "host2 says removal is pending", func() error {
		if st := stateOf(h[1].syncer, "ov1"); st.State != "removal-pending" {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	if _, ok := h[1].engine.byName("ov_net1"); !ok {
		t.Fatal("host2 removed a network its container uses")
	}
	if _, found, _ := h[1].client.LookupNetwork("ov1"); !found {
		t.Fatal("the cluster's configuration went while host2 has the network")
	}
	// The container goes: so does the network, then the cluster's config.
	h[1].engine.setUsers("ov_net1", 0)
	eventually(t, "host2 removes ov_net1", func() error {
		if _, ok := h[1].engine.byName("ov_net1"); ok {
			return errors.New("still there")
		}
		return nil
	})
	if deleted, err := h[1].client.LeaveNetwork("ov1"); err != nil || !deleted {
		t.Fatalf("the last host's leave: deleted %v, %v", deleted, err)
	}
	recs, _, err := h[1].client.DockerNetworks()
	if err != nil || len(recs) != 0 {
		t.Fatalf("the Docker record outlived the network: %+v %v", recs, err)
	}
	// host1 never creates it again.
	for _, x := range h {
		waitPasses(t, x.syncer, 2)
	}
	for i, x := range h {
		if _, ok := x.engine.byName("ov_net1"); ok {
			t.Errorf("host%d has ov_net1 again", i+1)
		}
	}
}

func TestDockerDownIsRetried(t *testing.T) {
	h := syncHosts(t, 2)
	h[1].engine.mu.Lock()
	h[1].engine.down = true
	h[1].engine.mu.Unlock()
	h[0].join(t, "ov1", "10.0.0.0/24")
	h[0].engine.userCreate(t, "ov_net1", "ov1", "10.0.0.0/24")
	eventually(t, "host2 says why syncing is off", func() error {
		if st := h[1].syncer.Status(); st.On || st.Reason == "" || st.Reason == "starting" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	h[1].engine.mu.Lock()
	h[1].engine.down = false
	h[1].engine.mu.Unlock()
	eventually(t, "host2 has ov_net1 once its Docker is back", func() error {
		if _, ok := h[1].engine.byName("ov_net1"); !ok {
			return errors.New("absent")
		}
		if !h[1].syncer.Status().On {
			return errors.New("status still off")
		}
		return nil
	})
}

func TestSameNetworkCreatedAtOnceIsAdopted(t *testing.T) {
	h := syncHosts(t, 2)
	for _, x := range h {
		x.join(t, "ov1", "10.0.0.0/24")
		x.engine.userCreate(t, "ov_net1", "ov1", "10.0.0.0/24")
	}
	eventually(t, "both hosts published or adopted", func() error {
		for i, x := range h {
			if st := stateOf(x.syncer, "ov1"); st.State != "present" {
				return fmt.Errorf("host%d: %+v", i+1, st)
			}
		}
		return nil
	})
	recs, _, err := h[0].client.DockerNetworks()
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %+v %v", recs, err)
	}
	// Another network under the same cluster name is a conflict, said.
	h2 := syncHosts(t, 2)
	h2[0].join(t, "ov1", "10.0.0.0/24")
	h2[0].engine.userCreate(t, "ov_net1", "ov1", "10.0.0.0/24")
	h2[1].join(t, "ov1", "10.0.0.0/24")
	h2[1].engine.userCreate(t, "other", "ov1", "10.0.0.0/24")
	eventually(t, "one of the two says conflict", func() error {
		for _, x := range h2 {
			if st := stateOf(x.syncer, "ov1"); st.State == "conflict" {
				return nil
			}
		}
		return errors.New("no conflict reported")
	})
}

func TestCreatedAgainAfterRemovalIsInUseAgain(t *testing.T) {
	h := syncHosts(t, 2)
	inUseOnHost2(t, h)
	if err := h[0].engine.remove("ov_net1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "removal pending on host2", func() error {
		if st := stateOf(h[1].syncer, "ov1"); st.State != "removal-pending" {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	h[0].engine.userCreate(t, "ov_net1", "ov1", "10.0.0.0/24")
	eventually(t, "the record is in use again", func() error {
		recs, _, err := h[0].client.DockerNetworks()
		if err != nil || len(recs) != 1 || recs[0].Removed != "" {
			return fmt.Errorf("records %+v %v", recs, err)
		}
		if st := stateOf(h[1].syncer, "ov1"); st.State != "present" {
			return fmt.Errorf("host2: %+v", st)
		}
		return nil
	})
	h[1].engine.setUsers("ov_net1", 0)
	waitPasses(t, h[1].syncer, 2)
	if _, ok := h[1].engine.byName("ov_net1"); !ok {
		t.Error("host2 removed a network that is in use again")
	}
}

// swarmCreate is swarm making its network id on this node (a task here
// needs it): scope swarm, one ID on every node, its configuration from a
// config-only network with mynet's IPAM.
func (e *fakeEngine) swarmCreate(id, name, clusterName, subnet string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nets[id] = Network{ID: id, Name: name, Driver: e.driver, IPAMDriver: e.driver, Scope: scopeSwarm,
		IPAMOptions: map[string]string{optCluster: clusterName}, Subnet: netip.MustParsePrefix(subnet)}
}

// TestSwarmNetworksAreLeftToSwarm: swarm makes a swarm network of mynet's
// on a node when a task there needs it and removes it when the last task
// there goes. The syncer neither publishes it (no host gets a local copy)
// nor takes its removal for a user's (no host loses its own).
func TestSwarmNetworksAreLeftToSwarm(t *testing.T) {
	t.Parallel()
	h := syncHosts(t, 2)
	for _, x := range h {
		x.join(t, "web", "10.0.9.0/24")
		x.engine.swarmCreate("swarmnet1", "web", "web", "10.0.9.0/24")
	}
	settle := func() {
		for _, x := range h {
			waitPasses(t, x.syncer, 2)
		}
	}
	settle()
	if recs, _, err := h[0].client.DockerNetworks(); err != nil || len(recs) != 0 {
		t.Fatalf("a swarm network was published for every host's Docker: %+v %v", recs, err)
	}
	// The last task on host1 goes: swarm removes the network there.
	if err := h[0].engine.Remove(t.Context(), "swarmnet1"); err != nil {
		t.Fatal(err)
	}
	settle()
	if _, ok := h[1].engine.byName("web"); !ok {
		t.Fatal("host2 lost its swarm network when swarm removed host1's")
	}
	if _, ok := h[0].engine.byName("web"); ok {
		t.Fatal("the syncer made host1's swarm network again")
	}
	if recs, _, err := h[0].client.DockerNetworks(); err != nil || len(recs) != 0 {
		t.Fatalf("records after swarm's removal: %+v %v", recs, err)
	}
	for i, x := range h {
		if st := stateOf(x.syncer, "web"); st.State != "" {
			t.Errorf("host%d's syncer reports the swarm network: %+v", i+1, st)
		}
	}
}
