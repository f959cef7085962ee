package main

import (
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
// data flows docker -> plugin -> driver/ipam -> store + netutil/firewall ->
// kernel, and nothing imports anything above it.
var allowedInternal = map[string][]string{
	"errdefs":         {},
	"store":           {},
	"netutil":         {},
	"firewall":        {},
	"hostport":        {},
	"internal/nstest": {},
	"internal/fault":  {},
	"bench":           {},
	"bench/rr":        {},
	"ipam":            {"errdefs", "store", "internal/fault"},
	"driver":          {"errdefs", "store", "netutil", "firewall", "hostport", "internal/fault"},
	"plugin":          {"errdefs"},
	".":               {"driver", "firewall", "hostport", "ipam", "netutil", "plugin", "store", "internal/fault"},
}

// kernelLibraries may each be imported by one package only.
var kernelLibraries = map[string]string{
	"github.com/vishvananda/netlink":           "netutil",
	"github.com/vishvananda/netns":             "netutil",
	"github.com/coreos/go-iptables":            "firewall",
	"github.com/docker/go-plugins-helpers/sdk": "plugin",
}

// TestArchitecture enforces the layering of STYLE.md on every non-test file.
func TestArchitecture(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || path == "test" || d.Name() == "bin") {
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
			for lib, owner := range kernelLibraries {
				if (p == lib || strings.HasPrefix(p, lib+"/")) && pkg != owner {
					t.Errorf("%s imports %s, which only %s may import", path, p, owner)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
