// Command mynet is a Docker network plugin: a daemon serving Docker's remote
// NetworkDriver and IpamDriver APIs on one unix socket, for bridge networks
// built from Linux bridges, veth pairs and iptables.
//
//	mynet [--socket PATH] [--state-dir DIR] [--log-level LEVEL]   run the daemon
//	mynet status [--json] [--socket PATH] [--state-dir DIR]       networks, endpoints, ports, pools
//	mynet version                                                 print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/firewall"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/ipam"
	"github.com/mynet/mynet/netutil"
	"github.com/mynet/mynet/plugin"
	"github.com/mynet/mynet/store"
)

// version is set at build time (make build).
var version = "dev"

// config is the daemon's configuration from flags and environment.
type config struct {
	Socket   string
	StateDir string
	LogLevel logrus.Level
	// ReconcileEvery is how often the daemon re-checks the kernel against
	// its state (0: only at start and on SIGHUP).
	ReconcileEvery time.Duration
	// IPTables is the iptables backend: auto, nft, legacy or system.
	IPTables string
}

// stateFile is the bbolt file inside --state-dir.
const stateFile = "mynet.db"

// parseConfig reads the daemon's flags, each defaulting to its environment
// variable and then to a built-in default.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("mynet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mynet [flags]           run the daemon\n       mynet status [--json]  show networks, endpoints, published ports and pools\n       mynet version          print the version\n\nflags:\n")
		fs.PrintDefaults()
	}
	return parseConfigFlags(fs, args, getenv)
}

// parseConfigFlags adds the common flags to fs and parses args.
func parseConfigFlags(fs *flag.FlagSet, args []string, getenv func(string) string) (*config, error) {
	env := func(def string, names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return def
	}
	socket := fs.String("socket", env("/run/docker/plugins/mynet.sock", "MYNET_SOCKET"),
		"unix socket to serve Docker on; its base name is the driver name (env MYNET_SOCKET)")
	stateDir := fs.String("state-dir", env("/var/lib/mynet", "MYNET_STATE_DIR"),
		"directory of the state file "+stateFile+" (env MYNET_STATE_DIR)")
	level := fs.String("log-level", env("info", "MYNET_LOG_LEVEL", "LOG_LEVEL"),
		"debug, info, warn or error (env MYNET_LOG_LEVEL or LOG_LEVEL)")
	every := fs.String("reconcile-interval", env("10s", "MYNET_RECONCILE_INTERVAL"),
		"how often to re-check bridges, veths and iptables against the state and repair them; 0 disables (env MYNET_RECONCILE_INTERVAL)")
	backend := fs.String("iptables-backend", env(firewall.BackendAuto, "MYNET_IPTABLES_BACKEND"),
		"iptables binaries to run: auto (the backend the host's rules are in), nft, legacy or system (env MYNET_IPTABLES_BACKEND)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch *backend {
	case firewall.BackendAuto, firewall.BackendNFT, firewall.BackendLegacy, firewall.BackendSystem:
	default:
		return nil, fmt.Errorf("--iptables-backend: %q is not auto, nft, legacy or system", *backend)
	}
	interval, err := time.ParseDuration(*every)
	if err != nil || interval < 0 {
		return nil, fmt.Errorf("--reconcile-interval: %q is not a duration such as 10s", *every)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see mynet -h)", fs.Arg(0))
	}
	lvl, err := logrus.ParseLevel(*level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if !filepath.IsAbs(*socket) || !filepath.IsAbs(*stateDir) {
		return nil, errors.New("--socket and --state-dir must be absolute paths")
	}
	return &config{Socket: *socket, StateDir: *stateDir, LogLevel: lvl, ReconcileEvery: interval, IPTables: *backend}, nil
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "version":
			fmt.Println("mynet", version)
			return
		case "status":
			err := runStatus(os.Args[2:], os.Getenv, os.Stdout, os.Stderr)
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "mynet status:", err)
				os.Exit(1)
			}
			return
		}
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mynet:", err)
		os.Exit(2)
	}
	logger := logrus.New()
	logger.SetLevel(cfg.LogLevel)
	logger.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	log := logrus.NewEntry(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.WithError(err).Error("mynet stopped")
		os.Exit(1)
	}
}

// run builds the parts, serves until ctx ends, and shuts down. Shutting down
// touches no bridge, veth or rule: containers keep their networking.
func run(ctx context.Context, cfg *config, log *logrus.Entry) error {
	log.WithFields(logrus.Fields{"version": version, "socket": cfg.Socket, "state_dir": cfg.StateDir}).Info("mynet starting")
	l, err := plugin.Listen(cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket)

	st, err := store.OpenBolt(filepath.Join(cfg.StateDir, stateFile))
	if err != nil {
		l.Close()
		return err
	}
	defer st.Close()
	links, err := netutil.New()
	if err != nil {
		l.Close()
		return err
	}
	defer links.Close()
	fw, err := firewall.New(log.WithField("part", "firewall"), cfg.IPTables)
	if err != nil {
		l.Close()
		return err
	}
	crash := fault.FromEnv(os.Getenv)
	if crash != nil {
		log.WithField("point", os.Getenv(fault.Env)).Warn("test fault hook armed: the daemon will kill itself there")
	}
	alloc, err := ipam.New(ipam.Config{Store: st, HostRoutes: links.Routes, Fault: crash, Log: log.WithField("part", "ipam")})
	if err != nil {
		l.Close()
		return err
	}
	drv, err := driver.New(driver.Config{
		Store: st, Links: links, Firewall: fw, EnsureSysctl: netutil.EnsureSysctl, Fault: crash, Log: log.WithField("part", "driver"),
	})
	if err != nil {
		l.Close()
		return err
	}
	// Networks come back before the first call is answered; connections that
	// arrive meanwhile wait in the listen backlog.
	if _, err := drv.Restore(); err != nil {
		log.WithError(err).Error("some networks could not be restored; they may lack connectivity")
	}

	srv := &http.Server{
		Handler: plugin.NewHandler(drv, alloc, plugin.Extras{
			Status:    func() any { return buildStatus("daemon", drv, alloc) },
			Reconcile: func() (any, error) { return drv.Reconcile() },
		}, log.WithField("part", "plugin")),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.Info("mynet ready")

	go reconcileLoop(ctx, cfg.ReconcileEvery, drv.Reconcile, log)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down; container networking is left as it is")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	drv.Close()
	if len(drv.Networks()) == 0 {
		// Nothing to protect: leave no rule behind (an uninstall ends here).
		if err := fw.RemoveBase(); err != nil {
			log.WithError(err).Warn("could not remove mynet's iptables chains")
		}
	}
	return nil
}

// reconcileLoop re-checks the kernel every interval and on SIGHUP, so that
// an `iptables -F`, a dockerd restart that put its rules above mynet's, or a
// deleted bridge is repaired without a restart.
func reconcileLoop[R any](ctx context.Context, every time.Duration, reconcile func() (R, error), log *logrus.Entry) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reconciling now")
		case <-tick:
		}
		if _, err := reconcile(); err != nil {
			log.WithError(err).Warn("reconcile failed; will retry")
		}
	}
}
