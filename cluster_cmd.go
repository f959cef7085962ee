package main

// The mynet cluster subcommands: forget, check and rotate-key.

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/status"
	"github.com/mynet/mynet/plugin"
)

// runCluster is `mynet cluster forget NODE`, which removes a dead host's
// records and the addresses it claimed for good, and `mynet cluster check
// [--fix]`, which reports the records that do not agree. Flags may come
// before or after the node name, as users type them.
func runCluster(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "rotate-key" {
		return runRotateKey(args[1:], getenv, stdout, stderr)
	}
	fs := flag.NewFlagSet("mynet cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mynet cluster forget NODE [--force] [--cluster-store etcd://HOST:PORT] [--cluster-ca F --cluster-cert F --cluster-key F]\n"+
			"       mynet cluster check [--fix] [--cluster-store ...]\n"+
			"       mynet cluster rotate-key [--socket PATH]\n\n"+
			"forget removes a host that is gone for good: its record, its endpoints and every address it claimed;\n"+
			"a host whose lease is alive is refused unless --force.\n"+
			"check lists claims no endpoint holds, endpoint records no claim backs, duplicate records and hosts\n"+
			"gone past their TTL (exit 1 when it finds any); --fix removes the records no claim backs.\n"+
			"rotate-key makes this host's WireGuard key anew (the running daemon's, on --socket).\n\nflags:\n")
		fs.PrintDefaults()
	}
	o := &options{}
	store := fs.String("cluster-store", getenv("MYNET_CLUSTER_STORE"), "etcd://HOST:PORT[,...] (env MYNET_CLUSTER_STORE)")
	fs.StringVar(&o.Cluster.TLS.CA, "cluster-ca", getenv("MYNET_CLUSTER_CA"), "CA certificate of etcd's TLS")
	fs.StringVar(&o.Cluster.TLS.Cert, "cluster-cert", getenv("MYNET_CLUSTER_CERT"), "client certificate for etcd")
	fs.StringVar(&o.Cluster.TLS.Key, "cluster-key", getenv("MYNET_CLUSTER_KEY"), "client key for etcd")
	force := fs.Bool("force", false, "forget: the host even though its lease is alive (only for a host known dead)")
	fix := fs.Bool("fix", false, "check: remove the endpoint records no claim backs")
	if len(args) == 0 || (args[0] != "forget" && args[0] != "check") {
		fs.Usage()
		return status.UsageError{Err: errors.New("want: mynet cluster forget NODE, or mynet cluster check")}
	}
	nodes, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return status.UsageError{Err: err}
	}
	switch {
	case args[0] == "forget" && len(nodes) != 1:
		return errors.New("name the one host to forget: mynet cluster forget NODE")
	case args[0] == "check" && len(nodes) != 0:
		return fmt.Errorf("mynet cluster check takes no host name (got %s)", strings.Join(nodes, " "))
	}
	if *store == "" {
		return errors.New("--cluster-store (or MYNET_CLUSTER_STORE) is needed")
	}
	urls, err := storeURLs(*store, o.Cluster.TLS)
	if err != nil {
		return err
	}
	c, err := cluster.New(cluster.Config{Endpoints: urls, TLS: o.Cluster.TLS, Node: "mynet-cli"})
	if err != nil {
		return err
	}
	defer c.Close()
	if args[0] == "check" {
		return clusterCheck(c, *fix, stdout)
	}
	n, err := c.Forget(nodes[0], *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "forgot %s: %d records removed\n", nodes[0], n)
	return nil
}

// errCheckFound makes `mynet cluster check` exit 1 when it found anything.
var errCheckFound = errors.New("the cluster's records do not agree (see above)")

// clusterCheck prints what Check found, one finding a line under its kind.
func clusterCheck(c *cluster.Client, fix bool, stdout io.Writer) error {
	rep, err := c.Check(fix)
	if err != nil {
		return err
	}
	for _, k := range []struct {
		what  string
		items []string
	}{
		{"claims no endpoint holds (a container being created, or left by its host)", rep.ClaimsWithoutEndpoint},
		{"endpoint records no claim of their host backs (peers refuse them; --fix removes them)", rep.EndpointsWithoutClaim},
		{"addresses with records of more than one host", rep.Duplicates},
		{"hosts gone past their TTL (mynet cluster forget NODE once they are gone for good)", rep.GoneHosts},
		{"fixed", rep.Fixed},
	} {
		if len(k.items) == 0 {
			continue
		}
		fmt.Fprintf(stdout, "%s:\n", k.what)
		for _, it := range k.items {
			fmt.Fprintf(stdout, "  %s\n", it)
		}
	}
	if fix && len(rep.Fixed) > 0 {
		// What is left after the fixes decides the exit code.
		if rep, err = c.Check(false); err != nil {
			return err
		}
	}
	if rep.Clean() {
		fmt.Fprintln(stdout, "the cluster's records agree")
		return nil
	}
	return errCheckFound
}

// parseInterspersed parses flags wherever they stand among the arguments
// and returns the other arguments, in order (the flag package stops at the
// first non-flag). "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		if len(args) > fs.NArg() && args[len(args)-fs.NArg()-1] == "--" {
			return append(pos, fs.Args()...), nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// runRotateKey is `mynet cluster rotate-key [--socket PATH]`: the daemon
// makes this host's WireGuard key anew and publishes it; the other hosts
// take it at once.
func runRotateKey(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mynet cluster rotate-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", cmp.Or(getenv("MYNET_SOCKET"), plugin.DefaultSocket), "the daemon's socket (env MYNET_SOCKET)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return status.UsageError{Err: err}
	}
	code, body, err := plugin.NewClient(*socket, 30*time.Second).Post("/mynet.RotateKey", struct{}{})
	if err != nil {
		return fmt.Errorf("ask the daemon on %s: %w", *socket, err)
	}
	var res struct {
		PublicKey string `json:"public_key"`
		Err       string
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("the daemon answered %d: %s", code, body)
	}
	if code != 200 || res.Err != "" {
		return errors.New(cmp.Or(res.Err, string(body)))
	}
	fmt.Fprintf(stdout, "this host's new WireGuard public key: %s\n", res.PublicKey)
	return nil
}
