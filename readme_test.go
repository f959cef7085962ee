package main

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeSection returns the text of a README section, up to the next
// heading of the same level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	s = s[i+len(heading)+2:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

// The README's flag table lists exactly the daemon's flags, each with the
// environment variable the daemon reads, so users' scripts can trust it.
func TestReadmeListsEveryFlag(t *testing.T) {
	var usage bytes.Buffer
	if code := runMain([]string{"-h"}, func(string) string { return "" }, &usage, &usage); code != 0 {
		t.Fatalf("mynet -h exited %d", code)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(usage.String(), -1) {
		flags = append(flags, m[1])
	}
	table := readmeSection(t, "## Daemon flags")
	var documented []string
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range regexp.MustCompile("`--?([a-z-]+)").FindAllStringSubmatch(cells[1], -1) {
			documented = append(documented, m[1])
		}
	}
	slices.Sort(flags)
	slices.Sort(documented)
	if !slices.Equal(flags, documented) {
		t.Errorf("mynet -h has flags %v; the README's table documents %v", flags, documented)
	}
	for _, env := range regexp.MustCompile(`env (MYNET_[A-Z0-9_]+)`).FindAllStringSubmatch(usage.String(), -1) {
		if !strings.Contains(table, "`"+env[1]+"`") {
			t.Errorf("the README's flag table does not name %s", env[1])
		}
	}
}

// The quickstart uses the two set-up commands and the commands it shows
// work as root without sudo.
func TestReadmeQuickstart(t *testing.T) {
	q := readmeSection(t, "## Quickstart: a fresh Debian 12 to a container on a mynet network")
	for _, want := range []string{"make run", "docker network create -d mynet --ipam-driver mynet", "./bin/mynet status"} {
		if !strings.Contains(q, want) {
			t.Errorf("the quickstart lacks %q", want)
		}
	}
	for _, line := range strings.Split(q, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "sudo ") {
			t.Errorf("quickstart command needs sudo, which a root shell may lack: %s", line)
		}
	}
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^run: host-deps`).Match(mk) {
		t.Error("make run does not install what it needs first (host-deps)")
	}
}
