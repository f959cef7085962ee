package dockersync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/cluster"
)

// fakeNames is the driver's side: what it was told.
type fakeNames struct {
	mu    sync.Mutex
	eps   map[string]string // endpoint -> "name alias,alias"
	nets  map[string]string
	fail  error
	calls int
}

func (f *fakeNames) SetEndpointNames(id, name string, aliases []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return f.fail
	}
	f.eps[id] = name + " " + strings.Join(aliases, ",")
	return nil
}

func (f *fakeNames) SetNetworkNames(m map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nets = m
}

func (f *fakeNames) get(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eps[id]
}

// The sync tells the driver what Docker calls this host's containers: a
// rename is followed at the next pass, aliases come along, a failed
// publish is told again, and a container is inspected only when new or
// renamed.
func TestNamesFollowDocker(t *testing.T) {
	e := newFakeEngine()
	id := e.userCreate(t, "ov", "blue", "10.9.0.0/24")
	e.mu.Lock()
	e.eps[id] = []Endpoint{{ID: "ep1", Container: "c1", Name: "web"}}
	e.aliases["c1"] = []string{"web", "api", "c1short"}
	e.mu.Unlock()
	names := &fakeNames{eps: map[string]string{}, fail: errors.New("etcd down")}
	c := cluster.NewWithStore(cluster.NewMemory(), cluster.Config{Node: "host1", CallTimeout: time.Second})
	if _, _, err := c.Register(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Engine: e, Cluster: c, Local: e.local, Driver: "mynet", Names: names, Every: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitPasses(t, s, 3)
	if got := names.get("ep1"); got != "" {
		t.Fatalf("told %q while the driver could not publish", got)
	}
	names.mu.Lock()
	names.fail = nil
	names.mu.Unlock()
	eventually(t, "ep1's names told", func() error {
		if got := names.get("ep1"); got != "web api,c1short" {
			return fmt.Errorf("%q", got)
		}
		return nil
	})
	waitPasses(t, s, 3)
	e.mu.Lock()
	inspects := e.inspects
	e.eps[id] = []Endpoint{{ID: "ep1", Container: "c1", Name: "web2"}} // docker rename web web2
	e.aliases["c1"] = []string{"web2", "api", "c1short"}
	e.mu.Unlock()
	eventually(t, "the rename told", func() error {
		if got := names.get("ep1"); got != "web2 api,c1short" {
			return fmt.Errorf("%q", got)
		}
		return nil
	})
	waitPasses(t, s, 3)
	e.mu.Lock()
	if n := e.inspects - inspects; n != 1 {
		t.Errorf("%d inspects for one rename, want 1", n)
	}
	e.mu.Unlock()
	names.mu.Lock()
	if names.nets[id] != "ov" {
		t.Errorf("network names told: %v", names.nets)
	}
	names.mu.Unlock()
	if !slices.Contains([]string{"web2 api,c1short"}, names.get("ep1")) {
		t.Error("names lost")
	}
}
