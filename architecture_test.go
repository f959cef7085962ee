package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/mynet/mynet/"

// allowedInternal says which of mynet's packages each package may import:
// data flows docker -> plugin -> driver/ipam -> the internal leaves ->
// kernel, and nothing imports anything above it. main, internal/daemon
// (the wiring) and internal/status (the status command) sit on top.
var allowedInternal = map[string][]string{
	"internal/errdefs":  {},
	"internal/ids":      {},
	"internal/netaddr":  {},
	"internal/store":    {},
	"internal/netutil":  {},
	"internal/firewall": {"internal/ids"},
	"internal/hostport": {},
	"internal/metrics":  {},
	"internal/cluster":  {},
	"internal/wgtunnel": {},
	"internal/nstest":   {},
	// The one way tests wait; it imports testing, so no package of the
	// daemon's lists it (their tests may).
	"internal/poll":       {},
	"internal/fault":      {},
	"internal/engineapi":  {},
	"internal/dockersync": {"internal/cluster"},
	"internal/dnsforward": {},
	// A cluster network's peers, names and watch: the driver's alone (no
	// other package lists it), over the cluster, the kernel and the store.
	"internal/clusternet": {"internal/cluster", "internal/ids", "internal/netaddr", "internal/netutil", "internal/store"},
	// The kernel's view of what a removal left (netutil), beside the CLI.
	"test/bench":      {"test/dockercli", "internal/netutil"},
	"test/dockercli":  {},
	"test/etcd":       {},
	"test/etcdtest":   {"test/testbin"},
	"test/mhtest":     {"internal/poll", "plugin", "test/etcdtest", "test/testbin"},
	"test/testbin":    {},
	"test/bench/rr":   {},
	"ipam":            {"internal/cluster", "internal/errdefs", "internal/netaddr", "internal/store", "internal/fault"},
	"driver":          {"internal/engineapi", "internal/cluster", "internal/clusternet", "internal/errdefs", "internal/ids", "internal/netaddr", "internal/store", "internal/netutil", "internal/firewall", "internal/hostport", "internal/fault"},
	"plugin":          {"internal/engineapi", "internal/errdefs"},
	"internal/status": {"driver", "ipam", "plugin", "internal/dockersync", "internal/firewall", "internal/ids", "internal/store"},
	"internal/daemon": {"driver", "ipam", "plugin", "internal/cluster", "internal/dnsforward", "internal/dockersync", "internal/status", "internal/metrics", "internal/firewall", "internal/netutil",
		"internal/store", "internal/fault", "internal/wgtunnel", "internal/errdefs"},
	".": {"internal/cluster", "internal/daemon", "internal/dockersync", "internal/status", "internal/firewall", "internal/fault", "internal/store", "internal/wgtunnel", "ipam", "plugin"},
}

// kernelLibraries may each be imported by one package only.
var kernelLibraries = map[string]string{
	"github.com/vishvananda/netlink":           "internal/netutil",
	"github.com/vishvananda/netns":             "internal/netutil",
	"github.com/google/nftables":               "internal/netutil",
	"github.com/coreos/go-iptables":            "internal/firewall",
	"github.com/docker/go-plugins-helpers/sdk": "plugin",
	"github.com/prometheus/client_golang":      "internal/metrics",
	"github.com/coreos/go-systemd":             "internal/daemon",
	"go.etcd.io/etcd/client":                   "internal/cluster",
	"go.etcd.io/etcd/api":                      "internal/cluster",
	// WireGuard: wgctrl (kernel and userspace devices) and wireguard-go.
	"golang.zx2c4.com/wireguard": "internal/wgtunnel",
	// Docker's API, from one goroutine of its own (never a handler).
	"github.com/moby/moby/client": "internal/dockersync",
	"github.com/moby/moby/api":    "internal/dockersync",
	// The server is for tests only: the daemon never links it. Its
	// requests' types come with it (the test server deletes a prefix).
	"go.etcd.io/etcd/server":              "test/etcd",
	"go.etcd.io/etcd/api/v3/etcdserverpb": "test/etcd",
}

// ownerOf is the package that may import p: the owner of the longest
// library path p is under ("" when none).
func ownerOf(p string) (lib, owner string) {
	for l, o := range kernelLibraries {
		if (p == l || strings.HasPrefix(p, l+"/")) && len(l) > len(lib) {
			lib, owner = l, o
		}
	}
	return lib, owner
}

// TestArchitecture enforces the layering README's Layout describes on every
// non-test file: data flows one way (docker -> plugin -> driver/ipam ->
// internal/* -> kernel / etcd), and each kernel or service library has one
// importer.
func TestArchitecture(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || path == "test/e2e" || path == "test/integration" || d.Name() == "bin" || d.Name() == "dist") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		pkg := filepath.Dir(path)
		allowed, known := allowedInternal[pkg]
		if !known {
			t.Errorf("%s: package %s has no entry in allowedInternal; add one", path, pkg)
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if rest, ok := strings.CutPrefix(p, module); ok {
				if !slices.Contains(allowed, rest) {
					t.Errorf("%s imports %s: %s may import only %v", path, p, pkg, allowed)
				}
			}
			if lib, owner := ownerOf(p); lib != "" && pkg != owner {
				t.Errorf("%s imports %s, which only %s may import", path, p, owner)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// netlinkDumps are the netlink calls that can fail with ErrDumpInterrupted
// under churn (CNI's netlinksafe list, as far as mynet could call them);
// internal/netutil/dump.go wraps each with a retry, and only it may call
// them.
var netlinkDumps = []string{"LinkByName", "LinkByAlias", "LinkList", "AddrList", "NeighList", "NeighListExecute", "NeighProxyList",
	"RouteList", "RouteListFiltered", "RouteListFilteredIter", "RuleList", "RuleListFiltered", "ConntrackTableList",
	"ConntrackDeleteFilters", "IpsetList", "IpsetListAll", "BridgeVlanList", "QdiscList", "ClassList", "FilterList",
	"XfrmPolicyList", "XfrmStateList", "LinkGetProtinfo"}

// TestNetlinkDumpsAreRetried forbids raw netlink dumps outside dump.go.
func TestNetlinkDumpsAreRetried(t *testing.T) {
	files, err := filepath.Glob("internal/netutil/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no netutil files: %v", err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") || filepath.Base(path) == "dump.go" {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && slices.Contains(netlinkDumps, sel.Sel.Name) {
				t.Errorf("%s: raw netlink %s; use dump.go's retried wrapper", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}
