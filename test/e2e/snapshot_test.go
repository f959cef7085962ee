package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// hostSnapshot is what a user of the machine would notice if the suite
// left it behind: plugins, networks, links, and mynet's VXLAN guard rule
// (a cluster network's, which must go with the last one).
type hostSnapshot struct {
	plugins, networks, links, guards []string
}

func takeHostSnapshot() (hostSnapshot, error) {
	var s hostSnapshot
	var err error
	if s.plugins, err = lines(dockerBin, "plugin", "ls", "--format", "{{.Name}} enabled={{.Enabled}}"); err != nil {
		return s, err
	}
	if s.networks, err = lines(dockerBin, "network", "ls", "--format", "{{.Name}} {{.Driver}}"); err != nil {
		return s, err
	}
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return s, fmt.Errorf("ip link: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.links = append(s.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	slices.Sort(s.links)
	out, err = exec.Command("iptables-save", "-t", "filter").Output()
	if err != nil {
		return s, fmt.Errorf("iptables-save: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, `"mynet:vxlan"`) {
			s.guards = append(s.guards, l)
		}
	}
	return s, nil
}

func lines(cmd string, args ...string) ([]string, error) {
	out, err := exec.Command(cmd, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", cmd, strings.Join(args, " "), err)
	}
	var l []string
	for _, s := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if s != "" {
			l = append(l, s)
		}
	}
	slices.Sort(l)
	return l, nil
}

// settlesTo compares the host with the snapshot, allowing links deleted in
// the background 5 s to go, and describes any difference.
func (before hostSnapshot) settlesTo() string {
	var diff string
	for range 50 {
		now, err := takeHostSnapshot()
		if err != nil {
			return err.Error()
		}
		diff = describe("plugins", before.plugins, now.plugins) + describe("networks", before.networks, now.networks) +
			describe("links", before.links, now.links) + describe("VXLAN guard rules", before.guards, now.guards)
		if diff == "" {
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	return diff
}

func describe(what string, before, after []string) string {
	var d string
	for _, x := range after {
		if !slices.Contains(before, x) {
			d += fmt.Sprintf("  %s: %q is new\n", what, x)
		}
	}
	for _, x := range before {
		if !slices.Contains(after, x) {
			d += fmt.Sprintf("  %s: %q is gone\n", what, x)
		}
	}
	return d
}
