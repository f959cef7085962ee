// Command mynet is a Docker network plugin: a daemon serving Docker's remote
// NetworkDriver and IpamDriver APIs on one unix socket, for bridge networks
// built from Linux bridges, veth pairs and iptables.
//
//	mynet [flags]                 run the daemon (mynet -h lists the flags)
//	mynet status [--json] [...]   health, networks, endpoints, ports, pools
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
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/daemon"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/status"
	"github.com/mynet/mynet/ipam"
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
	fs.StringVar(&o.Socket, "socket", env(status.DefaultSocket, "MYNET_SOCKET"),
		"unix socket to serve Docker on; its base name is the driver name (env MYNET_SOCKET); ignored when systemd passes the socket")
	fs.StringVar(&o.StateDir, "state-dir", env(status.DefaultStateDir, "MYNET_STATE_DIR"),
		"directory of the state file "+status.StateFile+", created if missing (env MYNET_STATE_DIR)")
	level := fs.String("log-level", env("info", "MYNET_LOG_LEVEL", "LOG_LEVEL"),
		"debug, info, warn or error (env MYNET_LOG_LEVEL or LOG_LEVEL)")
	fs.StringVar(&o.LogFormat, "log-format", env("text", "MYNET_LOG_FORMAT"), "text or json (env MYNET_LOG_FORMAT)")
	every := fs.String("reconcile-interval", env("10s", "MYNET_RECONCILE_INTERVAL"),
		"how often to re-check bridges, veths and iptables against the state and repair them; 0 disables the timer (env MYNET_RECONCILE_INTERVAL)")
	fs.StringVar(&o.IPTables, "iptables-backend", env(firewall.BackendAuto, "MYNET_IPTABLES_BACKEND"),
		"iptables binaries to run: auto (the backend the host's rules are in), nft, legacy or system (env MYNET_IPTABLES_BACKEND)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", env("", "MYNET_METRICS_ADDR"),
		"serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9323; off when empty (env MYNET_METRICS_ADDR)")
	var pools poolFlags
	fs.Var(&pools, "default-address-pool",
		"a pool for networks created without --subnet, in dockerd's syntax base=CIDR,size=N; repeat for more; replaces Docker's defaults (env MYNET_DEFAULT_ADDRESS_POOLS, space-separated)")
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
	interval, err := time.ParseDuration(*every)
	if err != nil || interval < 0 {
		return nil, fmt.Errorf("--reconcile-interval: %q is not a duration such as 10s", *every)
	}
	o.ReconcileEvery = interval
	if o.LogLevel, err = logrus.ParseLevel(*level); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return nil, fmt.Errorf("--log-format: %q is not text or json", o.LogFormat)
	}
	if !filepath.IsAbs(o.Socket) || !filepath.IsAbs(o.StateDir) {
		return nil, errors.New("--socket and --state-dir must be absolute paths")
	}
	o.Version, o.Config.Version = false, version
	return o, nil
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
		case "status":
			err := status.Command{Getenv: getenv, Stdout: stdout, Stderr: stderr}.Run(args[1:])
			switch {
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.As(err, new(status.UsageError)):
				return 2
			case err != nil:
				fmt.Fprintln(stderr, "mynet status:", err)
				return 1
			}
			return 0
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
