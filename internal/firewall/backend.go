package firewall

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/sirupsen/logrus"
)

// Backends: which iptables binaries mynet runs.
const (
	BackendAuto   = "auto"   // the one the host's rules are in (see ChooseBackend)
	BackendNFT    = "nft"    // iptables-nft (nf_tables)
	BackendLegacy = "legacy" // iptables-legacy (x_tables)
	BackendSystem = "system" // plain `iptables`, whatever the host's alternatives say
)

// ChooseBackend picks the backend whose tables hold rules, as
// Kubernetes' iptables-wrapper does: when both iptables-nft and
// iptables-legacy exist, the one with more rules is the one in use (dockerd
// has put its rules there); with none anywhere, or only plain iptables, the
// host's default.
func ChooseBackend(log *logrus.Entry) string {
	count := func(cmd string) int {
		path, err := exec.LookPath(cmd)
		if err != nil {
			return -1
		}
		out, err := exec.Command(path).Output()
		if err != nil {
			return -1
		}
		return strings.Count(string(out), "\n-A ")
	}
	nft, legacy := count("iptables-nft-save"), count("iptables-legacy-save")
	choice := BackendSystem
	switch {
	case nft < 0 || legacy < 0:
	case legacy > nft:
		choice = BackendLegacy
	case nft > legacy:
		choice = BackendNFT
	}
	log.WithFields(logrus.Fields{"backend": choice, "nft_rules": nft, "legacy_rules": legacy}).Info("iptables backend chosen")
	return choice
}

func newExecBackend(f Family, kind string, observe func(family, op string, took time.Duration), log *logrus.Entry) (*backend, error) {
	cmd := "iptables"
	if f == IPv6 {
		cmd = "ip6tables"
	}
	switch kind {
	case BackendNFT, BackendLegacy:
		cmd += "-" + kind
	case BackendSystem:
	default:
		return nil, fmt.Errorf("unknown iptables backend %q (want auto, nft, legacy or system)", kind)
	}
	bin, err := exec.LookPath(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	proto := iptables.ProtocolIPv4
	if f == IPv6 {
		proto = iptables.ProtocolIPv6
	}
	ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Path(bin), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	save, err := exec.LookPath(cmd + "-save")
	if err != nil {
		return nil, fmt.Errorf("%s-save: %w", cmd, err)
	}
	restore, err := exec.LookPath(cmd + "-restore")
	if err != nil {
		return nil, fmt.Errorf("%s-restore: %w", cmd, err)
	}
	v1, v2, v3 := ipt.GetIptablesVersion()
	log.WithFields(logrus.Fields{"family": f.String(), "binary": bin, "version": fmt.Sprintf("%d.%d.%d", v1, v2, v3)}).Debug("iptables found")
	var b batcher = execBatcher{save: save, restore: restore}
	if observe != nil {
		b = timedBatcher{b: b, family: f.String(), observe: observe}
	}
	return &backend{family: f, batch: b, ipt: ipt}, nil
}

type execBatcher struct{ save, restore string }

func (e execBatcher) Save() (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(e.save)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", e.save, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (e execBatcher) Restore(input string) error {
	var errb bytes.Buffer
	cmd := exec.Command(e.restore, "--noflush", "--wait")
	cmd.Stdin = strings.NewReader(input)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", e.restore, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// timedBatcher tells an observer how long each save and restore took.
type timedBatcher struct {
	b       batcher
	family  string
	observe func(family, op string, took time.Duration)
}

func (t timedBatcher) Save() (string, error) {
	start := time.Now()
	out, err := t.b.Save()
	t.observe(t.family, "save", time.Since(start))
	return out, err
}

func (t timedBatcher) Restore(input string) error {
	start := time.Now()
	err := t.b.Restore(input)
	t.observe(t.family, "restore", time.Since(start))
	return err
}

// Health is what Check found.
type Health struct {
	Backend string `json:"backend"` // nft, legacy or system
	Version string `json:"version"` // of the IPv4 iptables
	IPv6    bool   `json:"ipv6"`
	// BaseInstalled says whether mynet's chains are in place (they are not
	// before the first network, nor after the last one is gone).
	BaseInstalled bool `json:"base_installed"`
}

// Check runs iptables once per family to see that the backend answers and
// whether mynet's chains are there. An error means iptables cannot be run
// or read: no network can be created or repaired until it is fixed.
func (f *Firewall) Check() (Health, error) {
	h := Health{Backend: f.kind, IPv6: f.v6 != nil, BaseInstalled: true}
	for _, b := range f.backends() {
		if b.ipt == nil {
			continue
		}
		if b.family == IPv4 {
			v1, v2, v3 := b.ipt.GetIptablesVersion()
			h.Version = fmt.Sprintf("%d.%d.%d", v1, v2, v3)
		}
		ok, err := b.ipt.ChainExists("filter", ChainForward)
		if err != nil {
			return h, fmt.Errorf("%s: iptables does not answer: %w", b.family, err)
		}
		h.BaseInstalled = h.BaseInstalled && ok
	}
	return h, nil
}
