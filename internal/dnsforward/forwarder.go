package dnsforward

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"
)

// Config is what Forwarders need; the daemon wires the kernel parts.
type Config struct {
	// Resolve answers a question for name (lower case, one label) from a
	// sandbox on the networks (IDs): other hosts' containers' addresses
	// there, and whether a container of this host has the name there.
	Resolve func(networks []string, name string) (addrs []netip.Addr, local bool)
	// ResolveAddr answers a PTR question for ip from a sandbox on the
	// networks: the name of another host's container that has it there
	// (nil: PTR questions all go to Docker).
	ResolveAddr func(networks []string, ip netip.Addr) (name string, ok bool)
	// Enter runs fn in the network namespace at path (netutil.InNetns).
	Enter func(path string, fn func() error) error
	// OpenRedirect opens, in the namespace at path, the redirect of its
	// questions to 127.0.0.11:53 to the box's ports, which works only
	// while the box renews it (netutil.DNSNAT).
	OpenRedirect func(path string) (Redirect, error)
	// Mark is the firewall mark of the questions passed to Docker, which
	// the redirect lets through.
	Mark int
	// Flush forgets the namespace's DNS flows after the redirect changed,
	// but those NATed to keep (the forwarder's port; 0: none), run in the
	// namespace (netutil.FlushDNSFlows); nil: none.
	Flush func(keep uint16) error
	Log   *logrus.Entry
}

// Redirect is a sandbox's redirect of its DNS questions to the box
// (netutil.DNSNAT): Ensure makes it point at the box's ports; Renew, from
// the box's serving loop, keeps it alive for ttl, so it lapses within
// leaseTTL of mynet ending or freezing; Remove takes it away.
type Redirect interface {
	Ensure(udpPort, tcpPort uint16) (changed bool, err error)
	Renew(ttl time.Duration) error
	Remove() error
	Close()
}

// TTL of mynet's answers: a removed container stops resolving within it.
const TTL = 2

// leaseTTL is how long the redirect outlives the last sign of life of
// the box's serving loop, which renews it every renewEvery: a container
// whose mynet died or froze has Docker's resolver alone within leaseTTL.
const (
	leaseTTL   = time.Second
	renewEvery = 250 * time.Millisecond
)

// dockerFirst is how long a question mynet could answer waits on Docker's
// resolver: Docker's own answer wins; mynet answers when Docker does not
// know the name (NXDOMAIN, SERVFAIL, REFUSED) or has not answered by then,
// which means it went on to the host's DNS servers for a name it has not
// got (Docker answers its own names from memory, in well under a
// millisecond).
const dockerFirst = 500 * time.Millisecond

// maxPending bounds the questions of one sandbox waiting on Docker's
// resolver; pendingFor is how long one waits before it is dropped.
const (
	maxPending = 512
	pendingFor = 5 * time.Second
)

// maxRate and maxBurst bound the questions one sandbox asks through the
// box (UDP and TCP together): beyond, they are dropped and the client asks
// again, so one container cannot take the CPU every other container's
// names need. A busy service resolving on every request asks hundreds a
// second at most.
const (
	maxRate  = 2000
	maxBurst = 1000
)

// keepFirst is when a new box checks again that its redirect is in place
// (something in the container may remove it); then every minute.
var keepFirst = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second}

// Forwarders are the boxes of every sandbox with a cluster endpoint.
type Forwarders struct {
	cfg Config
	log *logrus.Entry

	mu     sync.Mutex // guards boxes and closed
	boxes  map[string]*box
	closed bool
	wg     sync.WaitGroup
}

// New returns Forwarders with no box yet.
func New(cfg Config) *Forwarders {
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Forwarders{cfg: cfg, log: cfg.Log, boxes: map[string]*box{}}
}

// box is one sandbox's forwarder.
type box struct {
	f    *Forwarders
	path string
	log  *logrus.Entry
	stop chan struct{}

	mu        sync.Mutex        // guards endpoints
	endpoints map[string]string // endpoint ID -> network ID

	// rmu orders the keeper's checks of the redirect and its removal:
	// once closing, the redirect is never put back.
	rmu     sync.Mutex
	closing bool

	ready            chan struct{} // closed when the sockets are open (or the box closed first: then listen is nil)
	listen, upstream *net.UDPConn  // upstream is connected to Docker's resolver
	port             uint16
	tcp              *net.TCPListener // the container's questions over TCP (tcp.go)
	tcpPort          uint16
	redirect         Redirect
	limit            *rate.Limiter // the container's questions, both ways (maxRate)
	limited          atomic.Int64  // questions dropped over the bound
	renewed          time.Time     // the redirect's last renewal (the serving loop's)
	renewErr         bool          // the last renewal failed (logged once)

	pmu     sync.Mutex // guards pending
	pending map[uint16]*question

	cmu   sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

// Attach adds a cluster network's endpoint to its sandbox's box, which is
// set up in the background when it is new: a Join never waits on it.
func (f *Forwarders) Attach(sandbox, endpointID, networkID string) {
	if sandbox == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	b := f.boxes[sandbox]
	if b == nil {
		b = &box{f: f, path: sandbox, log: f.log.WithField("sandbox", sandbox), stop: make(chan struct{}), ready: make(chan struct{}),
			endpoints: map[string]string{}, pending: map[uint16]*question{}, conns: map[net.Conn]struct{}{},
			limit: rate.NewLimiter(maxRate, maxBurst)}
		f.boxes[sandbox] = b
		f.wg.Add(1)
		go func() { defer f.wg.Done(); b.run() }()
	}
	b.mu.Lock()
	b.endpoints[endpointID] = networkID
	b.mu.Unlock()
}

// Detach takes an endpoint out of its sandbox's box; the last one's going
// removes the redirect and closes the box.
func (f *Forwarders) Detach(sandbox, endpointID string) {
	f.mu.Lock()
	b := f.boxes[sandbox]
	if b == nil {
		f.mu.Unlock()
		return
	}
	b.mu.Lock()
	delete(b.endpoints, endpointID)
	empty := len(b.endpoints) == 0
	b.mu.Unlock()
	if empty {
		delete(f.boxes, sandbox)
	}
	f.mu.Unlock()
	if empty {
		b.close()
	}
}

// Close removes every redirect and closes every box: with mynet stopped,
// the containers' questions go to Docker's resolver alone.
func (f *Forwarders) Close() {
	f.mu.Lock()
	f.closed = true
	boxes := f.boxes
	f.boxes = map[string]*box{}
	f.mu.Unlock()
	for _, b := range boxes {
		b.close()
	}
	f.wg.Wait()
}

// Sandboxes lists the sandboxes with a box (status, tests).
func (f *Forwarders) Sandboxes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.boxes {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (b *box) enter(fn func() error) error { return b.f.cfg.Enter(b.path, fn) }

// run opens the box, serves it, and keeps its redirect first until the box
// closes.
func (b *box) run() {
	if !b.openRetrying() {
		return
	}
	b.log.WithField("port", b.port).Debug("name forwarder started")
	go b.relay()
	go b.serve()
	go b.serveTCP()
	wait := keepFirst
	for {
		d := time.Minute
		if len(wait) > 0 {
			d, wait = wait[0], wait[1:]
		}
		select {
		case <-b.stop:
			return
		case <-time.After(d):
		}
		b.rmu.Lock()
		if b.closing {
			b.rmu.Unlock()
			return
		}
		changed, err := b.redirect.Ensure(b.port, b.tcpPort)
		b.rmu.Unlock()
		switch {
		case err != nil:
			b.log.WithError(err).Debug("could not check the DNS redirect (the sandbox may be going)")
		case changed:
			b.flush(b.port)
			b.log.Debug("DNS redirect put back on top")
		}
	}
}

func (b *box) close() {
	close(b.stop)
	<-b.ready
	if b.listen == nil {
		return
	}
	b.rmu.Lock()
	b.closing = true
	b.rmu.Unlock()
	if err := b.redirect.Remove(); err != nil {
		b.log.WithError(err).Debug("could not remove the DNS redirect (the sandbox may be gone; else it lapses within a second, no longer renewed)")
	} else {
		b.flush(0)
	}
	b.redirect.Close()
	b.listen.Close()
	b.upstream.Close()
	b.tcp.Close()
	b.cmu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.cmu.Unlock()
	b.pmu.Lock()
	for id, q := range b.pending {
		b.forget(id, q)
	}
	b.pmu.Unlock()
}

// flush makes the sandbox's clients follow the redirect as it is now.
func (b *box) flush(keep uint16) {
	if b.f.cfg.Flush == nil {
		return
	}
	if err := b.enter(func() error { return b.f.cfg.Flush(keep) }); err != nil {
		b.log.WithError(err).Debug("could not flush the sandbox's DNS flows")
	}
}

func (b *box) networks() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.endpoints))
	for _, n := range b.endpoints {
		out = append(out, n)
	}
	return out
}
