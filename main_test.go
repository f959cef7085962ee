package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestParseOptions(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	def := func(edit func(o *options)) *options {
		o := &options{LogLevel: logrus.InfoLevel, LogFormat: "text"}
		o.Socket, o.StateDir, o.ReconcileEvery, o.IPTables, o.Config.Version = "/run/docker/plugins/mynet.sock", "/var/lib/mynet", 10*time.Second, "auto", version
		o.BridgeGroup = 0x6d6e
		if edit != nil {
			edit(o)
		}
		return o
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want *options // nil: an error
	}{
		{"defaults", nil, nil, def(nil)},
		{"env", nil, map[string]string{"MYNET_SOCKET": "/tmp/a.sock", "MYNET_STATE_DIR": "/tmp/st", "MYNET_LOG_LEVEL": "debug"},
			def(func(o *options) { o.Socket, o.StateDir, o.LogLevel = "/tmp/a.sock", "/tmp/st", logrus.DebugLevel })},
		{"LOG_LEVEL alias", nil, map[string]string{"LOG_LEVEL": "warn"}, def(func(o *options) { o.LogLevel = logrus.WarnLevel })},
		{"flags beat env", []string{"--socket", "/x/b.sock", "--log-level", "error"}, map[string]string{"MYNET_SOCKET": "/tmp/a.sock"},
			def(func(o *options) { o.Socket, o.LogLevel = "/x/b.sock", logrus.ErrorLevel })},
		{"reconcile interval", []string{"--reconcile-interval", "0"}, map[string]string{"MYNET_RECONCILE_INTERVAL": "3s"},
			def(func(o *options) { o.ReconcileEvery = 0 })},
		{"bad interval", []string{"--reconcile-interval", "soon"}, nil, nil},
		{"iptables backend", []string{"--iptables-backend", "legacy"}, nil, def(func(o *options) { o.IPTables = "legacy" })},
		{"bad backend", nil, map[string]string{"MYNET_IPTABLES_BACKEND": "ebtables"}, nil},
		{"sandbox root", nil, map[string]string{"MYNET_SANDBOX_ROOT": "/host/docker/netns"},
			def(func(o *options) { o.Cluster.SandboxRoot = "/host/docker/netns" })},
		{"relative sandbox root", []string{"--sandbox-root", "host/docker/netns"}, nil, nil},
		{"bridge group", []string{"--bridge-group", "42"}, nil, def(func(o *options) { o.BridgeGroup = 42 })},
		{"bridge group from env", nil, map[string]string{"MYNET_BRIDGE_GROUP": "0x10"}, def(func(o *options) { o.BridgeGroup = 16 })},
		{"bridge group 0", []string{"--bridge-group", "0"}, nil, nil},
		{"bad bridge group", []string{"--bridge-group", "0x1ffffffff"}, nil, nil},
		{"bad level", []string{"--log-level", "loud"}, nil, nil},
		{"json logs", []string{"--log-format", "json"}, nil, def(func(o *options) { o.LogFormat = "json" })},
		{"json logs from env", nil, map[string]string{"MYNET_LOG_FORMAT": "json"}, def(func(o *options) { o.LogFormat = "json" })},
		{"bad log format", []string{"--log-format", "xml"}, nil, nil},
		{"metrics", []string{"--metrics-addr", "127.0.0.1:9323"}, nil, def(func(o *options) { o.MetricsAddr = "127.0.0.1:9323" })},
		{"metrics from env", nil, map[string]string{"MYNET_METRICS_ADDR": "127.0.0.1:9999"}, def(func(o *options) { o.MetricsAddr = "127.0.0.1:9999" })},
		{"relative socket", []string{"--socket", "mynet.sock"}, nil, nil},
		{"stray argument", []string{"start"}, nil, nil},
		{"unknown flag", []string{"--nope"}, nil, nil},
		{"bad pool", []string{"--default-address-pool", "base=10.0.0.0/8"}, nil, nil},
		{"bad pool in env", nil, map[string]string{"MYNET_DEFAULT_ADDRESS_POOLS": "base=10.0.0.0/8,size=99"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOptions(tt.args, env(tt.env), io.Discard)
			if tt.want == nil {
				if err == nil {
					t.Errorf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Socket != tt.want.Socket || got.StateDir != tt.want.StateDir || got.LogLevel != tt.want.LogLevel ||
				got.LogFormat != tt.want.LogFormat || got.ReconcileEvery != tt.want.ReconcileEvery || got.IPTables != tt.want.IPTables || got.BridgeGroup != tt.want.BridgeGroup ||
				got.MetricsAddr != tt.want.MetricsAddr || got.Config.Version != tt.want.Config.Version || len(got.LocalPools) != 0 {
				t.Errorf("got %+v, want %+v", *got, *tt.want)
			}
		})
	}
}

// --default-address-pool takes dockerd's syntax, repeated; the environment
// variable holds several, space-separated, and the flags win over it.
func TestDefaultAddressPools(t *testing.T) {
	env := map[string]string{"MYNET_DEFAULT_ADDRESS_POOLS": "base=10.50.0.0/16,size=24 base=10.51.0.0/16,size=20"}
	o, err := parseOptions(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := (*poolFlags)(&o.LocalPools).String(); got != "base=10.50.0.0/16,size=24 base=10.51.0.0/16,size=20" {
		t.Errorf("pools from env = %s", got)
	}
	o, err = parseOptions([]string{"--default-address-pool", "base=10.60.0.0/16,size=24"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := (*poolFlags)(&o.LocalPools).String(); got != "base=10.60.0.0/16,size=24" {
		t.Errorf("pools from the flag = %s", got)
	}
}

// The command line as a user types it: exit codes and what is printed.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		out, noOut string // stdout contains out; stderr does not contain noOut twice
	}{
		{[]string{"--version"}, 0, "mynet " + version, ""},
		{[]string{"-v"}, 0, "mynet " + version, ""},
		{[]string{"version"}, 0, "mynet " + version, ""},
		{[]string{"--nope"}, 2, "", "flag provided but not defined"},
		{[]string{"-h"}, 0, "", ""},
		{[]string{"status", "-h"}, 0, "", ""},
		{[]string{"status", "--nope"}, 2, "", "flag provided but not defined"},
		{[]string{"cluster", "forget", "host3"}, 1, "", "--cluster-store (or MYNET_CLUSTER_STORE) is needed"},
		{[]string{"cluster", "forget", "--cluster-store", "http://x:1", "host3"}, 1, "", "does not start with etcd://"},
		// Flags after the node name, as docs/multihost.md writes them.
		{[]string{"cluster", "forget", "host3", "--cluster-store", "http://x:1"}, 1, "", "does not start with etcd://"},
		{[]string{"cluster", "forget", "host3", "--force", "--cluster-store=http://x:1"}, 1, "", "does not start with etcd://"},
		{[]string{"cluster", "forget", "host3", "host4", "--cluster-store", "etcd://x:1"}, 1, "", "name the one host to forget"},
		{[]string{"cluster", "forget", "--", "-host3", "--cluster-store"}, 1, "", "name the one host to forget"},
		{[]string{"cluster", "check"}, 1, "", "--cluster-store (or MYNET_CLUSTER_STORE) is needed"},
		{[]string{"cluster", "check", "host3", "--fix"}, 1, "", "takes no host name"},
		{[]string{"cluster", "nope"}, 2, "", "usage: mynet cluster forget NODE"},
		{[]string{"--cluster-store", "etcd://10.0.0.5:2379"}, 2, "", "needs --cluster-advertise"},
		{[]string{"--cluster-store", "etcd://10.0.0.5", "--cluster-advertise", "eth1"}, 2, "", "is not HOST:PORT"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := runMain(tt.args, func(string) string { return "" }, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("mynet %v: exit %d, want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tt.out) {
			t.Errorf("mynet %v printed %q, want %q", tt.args, stdout.String(), tt.out)
		}
		if tt.noOut != "" && strings.Count(stderr.String(), tt.noOut) != 1 {
			t.Errorf("mynet %v: stderr says %q %d times, want once:\n%s", tt.args, tt.noOut, strings.Count(stderr.String(), tt.noOut), stderr.String())
		}
	}
}

// --cluster-default-ipv6-pool: base=IPv6-CIDR,size=N; empty leaves the
// choice to the cluster (a random ULA /48 by its first host).
func TestClusterDefaultIPv6PoolFlag(t *testing.T) {
	o, err := parseOptions([]string{"--cluster-default-ipv6-pool", "base=fd00:1234:5678::/48,size=64"}, func(string) string { return "" }, io.Discard)
	if err != nil || o.Cluster.SubnetPool6.String() != "fd00:1234:5678::/48" || o.Cluster.SubnetSize6 != 64 {
		t.Fatalf("flag: %+v, %v", o, err)
	}
	o, err = parseOptions(nil, func(k string) string {
		if k == "MYNET_CLUSTER_DEFAULT_IPV6_POOL" {
			return "size=56,base=fd00:9::/40"
		}
		return ""
	}, io.Discard)
	if err != nil || o.Cluster.SubnetPool6.String() != "fd00:9::/40" || o.Cluster.SubnetSize6 != 56 {
		t.Fatalf("env: %+v, %v", o, err)
	}
	if o, err := parseOptions(nil, func(string) string { return "" }, io.Discard); err != nil || o.Cluster.SubnetPool6.IsValid() {
		t.Fatalf("default: %v, %v", o.Cluster.SubnetPool6, err)
	}
	for _, bad := range []string{"base=10.0.0.0/8,size=24", "base=fd00::/48", "base=fd00::/48,size=72", "base=fd00::/48,size=40", "fd00::/48", "base=fd00::/48,size=64,x=1"} {
		if _, err := parseOptions([]string{"--cluster-default-ipv6-pool", bad}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "--cluster-default-ipv6-pool") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
