// Command mynet is a Docker network plugin: a daemon serving Docker's remote
// NetworkDriver and IpamDriver APIs on one unix socket, for bridge networks
// built from Linux bridges, veth pairs and iptables, and multi-host (VXLAN)
// networks whose state is in etcd.
//
//	mynet [flags]                 run the daemon (mynet -h lists the flags)
//	mynet status [--json] [...]   health, networks, endpoints, ports, pools
//	mynet cluster forget|check    a cluster's records: forget a host, check them
//	mynet version | --version     print the version
//
// main only wires: flags and environment become a daemon.Config, a logger
// and a signal context; internal/daemon does the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/daemon"
	"github.com/mynet/mynet/internal/dockersync"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/status"
	"github.com/mynet/mynet/internal/store"
	"github.com/mynet/mynet/ipam"
	"github.com/mynet/mynet/plugin"
)

// version is set at build time (make build).
var version = "dev"

// options is the command line as parsed: the daemon's config and how to log.
type options struct {
	daemon.Config
	LogLevel  logrus.Level
	LogFormat string // text or json
	Version   bool   // --version: print it and exit
}

// poolFlags collects repeated --default-address-pool flags.
type poolFlags []ipam.PoolSet

func (p *poolFlags) String() string {
	var s []string
	for _, set := range *p {
		s = append(s, fmt.Sprintf("base=%s,size=%d", set.Base, set.Size))
	}
	return strings.Join(s, " ")
}

func (p *poolFlags) Set(v string) error {
	set, err := ipam.ParsePoolSet(v)
	if err != nil {
		return err
	}
	*p = append(*p, set)
	return nil
}

// parseOptions reads the daemon's flags, each defaulting to its environment
// variable and then to a built-in default.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("mynet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mynet [flags]              run the daemon\n"+
			"       mynet status [--json] [-h]  show health, networks, endpoints, published ports and pools\n"+
			"       mynet cluster forget NODE | check [--fix] [--cluster-store ...]  a cluster's records\n"+
			"       mynet cluster rotate-key [--socket PATH]  this host's WireGuard key, made anew\n"+
			"       mynet version, --version    print the version\n\nflags:\n")
		fs.PrintDefaults()
	}
	env := func(def string, names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return def
	}
	o := &options{}
	fs.StringVar(&o.Socket, "socket", env(plugin.DefaultSocket, "MYNET_SOCKET"),
		"unix socket to serve Docker on; its base name is the driver name (env MYNET_SOCKET); ignored when systemd passes the socket")
	fs.StringVar(&o.StateDir, "state-dir", env(store.DefaultDir, "MYNET_STATE_DIR"),
		"directory of the state file "+store.FileName+", created if missing (env MYNET_STATE_DIR)")
	level := fs.String("log-level", env("info", "MYNET_LOG_LEVEL", "LOG_LEVEL"),
		"debug, info, warn or error (env MYNET_LOG_LEVEL or LOG_LEVEL)")
	fs.StringVar(&o.LogFormat, "log-format", env("text", "MYNET_LOG_FORMAT"), "text or json (env MYNET_LOG_FORMAT)")
	every := fs.String("reconcile-interval", env("10s", "MYNET_RECONCILE_INTERVAL"),
		"how often to re-check bridges, veths and iptables against the state and repair them; 0 disables the timer (env MYNET_RECONCILE_INTERVAL)")
	fs.StringVar(&o.IPTables, "iptables-backend", env(firewall.BackendAuto, "MYNET_IPTABLES_BACKEND"),
		"iptables binaries to run: auto (the backend the host's rules are in), nft, legacy or system (env MYNET_IPTABLES_BACKEND)")
	group := fs.String("bridge-group", env(fmt.Sprintf("0x%x", firewall.DefaultBridgeGroup), "MYNET_BRIDGE_GROUP"),
		"device group mynet puts its bridges in, which the rules all networks share match; change it only if another tool uses this group (env MYNET_BRIDGE_GROUP)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", env("", "MYNET_METRICS_ADDR"),
		"serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9323; off when empty (env MYNET_METRICS_ADDR)")
	var pools poolFlags
	fs.Var(&pools, "default-address-pool",
		"a pool for networks created without --subnet, in dockerd's syntax base=CIDR,size=N; repeat for more; replaces Docker's defaults (env MYNET_DEFAULT_ADDRESS_POOLS, space-separated)")
	store := fs.String("cluster-store", env("", "MYNET_CLUSTER_STORE"),
		"etcd://HOST:PORT[,HOST:PORT...]: join a cluster whose shared state is in this etcd, for multi-host networks (env MYNET_CLUSTER_STORE)")
	fs.StringVar(&o.Cluster.Advertise, "cluster-advertise", env("", "MYNET_CLUSTER_ADVERTISE"),
		"this host's underlay address, or the name of the link that has it; VXLAN peers send to it (env MYNET_CLUSTER_ADVERTISE)")
	fs.StringVar(&o.Cluster.Node, "node-name", env(hostname(), "MYNET_NODE_NAME"), "this host's name in the cluster (env MYNET_NODE_NAME)")
	fs.StringVar(&o.Cluster.TLS.CA, "cluster-ca", env("", "MYNET_CLUSTER_CA"), "CA certificate of etcd's TLS (env MYNET_CLUSTER_CA)")
	fs.StringVar(&o.Cluster.TLS.Cert, "cluster-cert", env("", "MYNET_CLUSTER_CERT"), "client certificate for etcd (env MYNET_CLUSTER_CERT)")
	fs.StringVar(&o.Cluster.TLS.Key, "cluster-key", env("", "MYNET_CLUSTER_KEY"), "client key for etcd (env MYNET_CLUSTER_KEY)")
	ttl := fs.String("cluster-ttl", env("15s", "MYNET_CLUSTER_TTL"),
		"how long this host may be silent before its peers count it as gone (env MYNET_CLUSTER_TTL)")
	clusterPool := fs.String("cluster-default-address-pool", env("base=10.0.0.0/8,size=24", "MYNET_CLUSTER_DEFAULT_ADDRESS_POOL"),
		"the pool of cluster networks created without --subnet, base=CIDR,size=N: each gets the first subnet no cluster network and no host's route uses, the same on every host (env MYNET_CLUSTER_DEFAULT_ADDRESS_POOL)")
	clusterPool6 := fs.String("cluster-default-ipv6-pool", env("", "MYNET_CLUSTER_DEFAULT_IPV6_POOL"),
		"the IPv6 pool of cluster networks created with --ipv6 and no IPv6 subnet, base=CIDR,size=N (N up to 64), chosen once for the cluster by the first host that needs it; empty: a random ULA /48, size 64 (env MYNET_CLUSTER_DEFAULT_IPV6_POOL)")
	fs.StringVar(&o.Cluster.DockerHost, "docker-host", env(dockersync.DefaultHost, "MYNET_DOCKER_HOST"),
		"Docker's API, where a cluster network created on another host is created too (and removed); empty: off, create cluster networks on each host (env MYNET_DOCKER_HOST)")
	fs.StringVar(&o.Cluster.DockerDriver, "docker-driver", env("", "MYNET_DOCKER_DRIVER"),
		"mynet's driver name in that Docker; default: the socket's base name, or the name the networks of mynet there show (a managed plugin's reference) (env MYNET_DOCKER_DRIVER)")
	fs.StringVar(&o.Cluster.SandboxRoot, "sandbox-root", env("", "MYNET_SANDBOX_ROOT"),
		"where this process sees Docker's directory of containers' network namespaces (<exec-root>/netns), for names across hosts; empty: where Docker says; the managed plugin sets it to its mount of the host's /run/docker (env MYNET_SANDBOX_ROOT)")
	tunnel := tunnelFlags(fs, &o.Cluster.Tunnel, env)
	fs.BoolVar(&o.Version, "version", false, "print the version and exit")
	fs.BoolVar(&o.Version, "v", false, "short for --version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, status.UsageError{Err: err}
	}
	if o.Version {
		return o, nil
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see mynet -h)", fs.Arg(0))
	}
	if len(pools) == 0 {
		for _, v := range strings.Fields(getenv("MYNET_DEFAULT_ADDRESS_POOLS")) {
			if err := pools.Set(v); err != nil {
				return nil, fmt.Errorf("MYNET_DEFAULT_ADDRESS_POOLS: %w", err)
			}
		}
	}
	o.LocalPools = pools
	switch o.IPTables {
	case firewall.BackendAuto, firewall.BackendNFT, firewall.BackendLegacy, firewall.BackendSystem:
	default:
		return nil, fmt.Errorf("--iptables-backend: %q is not auto, nft, legacy or system", o.IPTables)
	}
	g, err := strconv.ParseUint(*group, 0, 32)
	if err != nil || g == 0 {
		return nil, fmt.Errorf("--bridge-group: %q is not a device group from 1 to 4294967295 (such as 0x%x)", *group, firewall.DefaultBridgeGroup)
	}
	o.BridgeGroup = uint32(g)
	interval, err := time.ParseDuration(*every)
	if err != nil || interval < 0 {
		return nil, fmt.Errorf("--reconcile-interval: %q is not a duration such as 10s", *every)
	}
	o.ReconcileEvery = interval
	if err := parseCluster(o, *store, *ttl); err != nil {
		return nil, err
	}
	if *clusterPool != "" {
		set, err := ipam.ParsePoolSet(*clusterPool)
		if err != nil || !set.Base.Addr().Is4() || set.Size > 30 {
			return nil, fmt.Errorf("--cluster-default-address-pool: %q is not base=IPv4-CIDR,size=N (N up to 30), such as base=10.0.0.0/8,size=24", *clusterPool)
		}
		o.Cluster.SubnetPool, o.Cluster.SubnetSize = set.Base, set.Size
	}
	if *clusterPool6 != "" {
		if o.Cluster.SubnetPool6, o.Cluster.SubnetSize6, err = parsePool6(*clusterPool6); err != nil {
			return nil, fmt.Errorf("--cluster-default-ipv6-pool: %w", err)
		}
	}
	if err := parseTunnel(&o.Cluster.Tunnel, tunnel); err != nil {
		return nil, err
	}
	if o.LogLevel, err = logrus.ParseLevel(*level); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return nil, fmt.Errorf("--log-format: %q is not text or json", o.LogFormat)
	}
	if !filepath.IsAbs(o.Socket) || !filepath.IsAbs(o.StateDir) {
		return nil, errors.New("--socket and --state-dir must be absolute paths")
	}
	if r := o.Cluster.SandboxRoot; r != "" && !filepath.IsAbs(r) {
		return nil, fmt.Errorf("--sandbox-root: %q is not an absolute path (such as /host/docker/netns)", r)
	}
	o.Version, o.Config.Version = false, version
	return o, nil
}

// commandExit is a subcommand's exit code: 0 for success or -h, 2 for a
// usage error (already printed with the usage), 1 for a failure, printed.
func commandExit(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(status.UsageError)):
		return 2
	default:
		fmt.Fprintln(stderr, name+":", err)
		return 1
	}
}

// parseCluster checks the cluster flags: all or none.
func parseCluster(o *options, store, ttl string) error {
	if store == "" {
		if o.Cluster.Advertise != "" {
			return errors.New("--cluster-advertise needs --cluster-store")
		}
		return nil
	}
	var err error
	if o.Cluster.Store, err = storeURLs(store, o.Cluster.TLS); err != nil {
		return err
	}
	if o.Cluster.Advertise == "" {
		return errors.New("--cluster-store needs --cluster-advertise: this host's underlay address (or its link's name)")
	}
	if err := cluster.ValidName(o.Cluster.Node); err != nil {
		return fmt.Errorf("--node-name: %w", err)
	}
	d, err := time.ParseDuration(ttl)
	if err != nil || d < 2*time.Second {
		return fmt.Errorf("--cluster-ttl: %q is not a duration of at least 2s", ttl)
	}
	o.Cluster.TTL = d
	return nil
}

// storeURLs turns --cluster-store etcd://HOST:PORT[,HOST:PORT...] into
// etcd's client URLs, https when TLS files are given.
func storeURLs(store string, tls cluster.TLS) ([]string, error) {
	scheme := "http://"
	if tls != (cluster.TLS{}) {
		scheme = "https://"
	}
	rest, ok := strings.CutPrefix(store, "etcd://")
	if !ok {
		return nil, fmt.Errorf("--cluster-store: %q does not start with etcd://", store)
	}
	var urls []string
	for _, hp := range strings.Split(rest, ",") {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, fmt.Errorf("--cluster-store: %q is not HOST:PORT", hp)
		}
		urls = append(urls, scheme+hp)
	}
	return urls, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// runMain is the command; it returns the exit code.
func runMain(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "mynet", version)
			return 0
		case "cluster":
			return commandExit("mynet cluster", runCluster(args[1:], getenv, stdout, stderr), stderr)
		case "status":
			return commandExit("mynet status", status.Command{Getenv: getenv, Stdout: stdout, Stderr: stderr}.Run(args[1:]), stderr)
		case "wg-device":
			return commandExit("mynet wg-device", runWGDevice(args[1:], stderr), stderr)
		}
	}
	o, err := parseOptions(args, getenv, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		if !errors.As(err, new(status.UsageError)) {
			fmt.Fprintln(stderr, "mynet:", err)
		}
		return 2
	case o.Version:
		fmt.Fprintln(stdout, "mynet", version)
		return 0
	}
	log := newLogger(o.LogLevel, o.LogFormat, stderr)
	o.Fault = fault.FromEnv(getenv)
	if o.Fault != nil {
		log.WithField("point", getenv(fault.Env)).Warn("test fault hook armed: the daemon will kill itself there")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, o.Config, log); err != nil {
		log.WithError(err).Error("mynet stopped")
		return 1
	}
	return 0
}

// serve builds the daemon and runs it until ctx ends.
func serve(ctx context.Context, cfg daemon.Config, log *logrus.Entry) error {
	l, owned, err := daemon.Listen(cfg)
	if err != nil {
		return err
	}
	if owned {
		defer os.Remove(cfg.Socket)
	}
	d, err := daemon.New(cfg, log)
	if err != nil {
		l.Close()
		return err
	}
	return d.Run(ctx, l)
}

func newLogger(level logrus.Level, format string, out io.Writer) *logrus.Entry {
	logger := logrus.New()
	logger.SetOutput(out)
	logger.SetLevel(level)
	if format == "json" {
		logger.SetFormatter(&logrus.JSONFormatter{})
	} else {
		logger.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	return logrus.NewEntry(logger)
}

// parsePool6 reads base=IPv6-CIDR,size=N, N from the base's length to 64.
func parsePool6(s string) (netip.Prefix, int, error) {
	bad := fmt.Errorf("%q is not base=IPv6-CIDR,size=N (N up to 64), such as base=fd00:1234:5678::/48,size=64", s)
	var base netip.Prefix
	size := -1
	for _, field := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		var err error
		switch k {
		case "base":
			base, err = netip.ParsePrefix(v)
		case "size":
			size, err = strconv.Atoi(v)
		default:
			return netip.Prefix{}, 0, bad
		}
		if err != nil {
			return netip.Prefix{}, 0, bad
		}
	}
	if !base.IsValid() || !base.Addr().Is6() || base.Addr().Is4In6() || size < base.Bits() || size > 64 {
		return netip.Prefix{}, 0, bad
	}
	return base.Masked(), size, nil
}
