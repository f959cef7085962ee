package wgtunnel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Modes of making the device (--cluster-wireguard).
const (
	ModeAuto      = "auto"      // the kernel's if it has WireGuard, else userspace
	ModeKernel    = "kernel"    // the kernel's or none
	ModeUserspace = "userspace" // wireguard-go, even where the kernel has WireGuard
)

// Kinds of device, as Kind reports them.
const (
	KindKernel    = "kernel"
	KindUserspace = "userspace"
)

// SocketDir is where userspace devices' UAPI sockets are, by name
// (wireguard-go's and wgctrl's fixed place).
const SocketDir = "/var/run/wireguard"

// Config is the device as this host wants it.
type Config struct {
	Name string // the link's name
	Port int    // WireGuard's UDP port on the underlay
	MTU  int    // the device's MTU: the underlay's less WireGuard's overhead
	Mode string // ModeAuto, ModeKernel or ModeUserspace
	// Binary is mynet's executable, run as `mynet wg-device` for a
	// userspace device; Dir is where that process's log and pid file go.
	Binary string
	Dir    string
}

// Validate checks the configuration before anything is made.
func (c Config) Validate() error {
	switch {
	case c.Name == "" || len(c.Name) > 15:
		return fmt.Errorf("WireGuard device name %q must have 1 to 15 characters", c.Name)
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("WireGuard port %d is not a UDP port", c.Port)
	case c.Mode != ModeAuto && c.Mode != ModeKernel && c.Mode != ModeUserspace:
		return fmt.Errorf("--cluster-wireguard %q is not auto, kernel or userspace", c.Mode)
	}
	return nil
}

// Links makes a kernel WireGuard link (netutil).
type Links interface {
	// AddWireGuard makes a kernel WireGuard link called name; false with
	// no error when the kernel has no WireGuard.
	AddWireGuard(name string) (bool, error)
}

// Tunnel is this host's WireGuard device.
type Tunnel struct {
	cfg   Config
	links Links
	wg    *wgctrl.Client
	log   *logrus.Entry

	mu   sync.Mutex // guards kind
	kind string
}

// New opens wgctrl (kernel and userspace devices). Nothing is made until
// Ensure.
func New(cfg Config, links Links, log *logrus.Entry) (*Tunnel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wg, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("open wgctrl: %w", err)
	}
	return &Tunnel{cfg: cfg, links: links, wg: wg, log: log}, nil
}

// Close releases wgctrl; the device stays.
func (t *Tunnel) Close() error { return t.wg.Close() }

// Kind is the kind of device in use: KindKernel, KindUserspace, or "" when
// none has been made or adopted yet.
func (t *Tunnel) Kind() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.kind
}

// ErrCannotEncrypt says this host can make no WireGuard device.
var ErrCannotEncrypt = errors.New("this host cannot make a WireGuard device")

// Ensure makes the device exist with this host's key and port: the one
// there is adopted (a restarted daemon's), else a kernel link is made, or
// a userspace device started, as the mode allows. Peers are SetPeers'.
func (t *Tunnel) Ensure(key wgtypes.Key) error {
	dev, err := t.wg.Device(t.cfg.Name)
	if errors.Is(err, syscall.ECONNREFUSED) {
		// The socket of a userspace device's process that is gone (killed):
		// the device went with it.
		t.log.WithField("device", t.cfg.Name).Warn("the userspace WireGuard device's process is gone; starting another")
		_ = os.Remove(filepath.Join(SocketDir, t.cfg.Name+".sock"))
		err = fs.ErrNotExist
	}
	if errors.Is(err, fs.ErrNotExist) {
		dev, err = t.make()
	}
	if err != nil {
		return err
	}
	kind := KindUserspace
	if dev.Type == wgtypes.LinuxKernel {
		kind = KindKernel
	}
	t.mu.Lock()
	if t.kind != kind {
		t.log.WithFields(logrus.Fields{"device": t.cfg.Name, "kind": kind}).Info("WireGuard device in use")
	}
	t.kind = kind
	t.mu.Unlock()
	if dev.PrivateKey == key && dev.ListenPort == t.cfg.Port {
		return nil
	}
	port := t.cfg.Port
	if err := t.wg.ConfigureDevice(t.cfg.Name, wgtypes.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
		return fmt.Errorf("configure WireGuard device %q: %w", t.cfg.Name, err)
	}
	return nil
}

// make creates the device as the mode says and returns it.
func (t *Tunnel) make() (*wgtypes.Device, error) {
	if t.cfg.Mode != ModeUserspace {
		ok, err := t.links.AddWireGuard(t.cfg.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			return t.wg.Device(t.cfg.Name)
		}
		if t.cfg.Mode == ModeKernel {
			return nil, fmt.Errorf("%w: the kernel has no WireGuard (Linux 5.6 or later, or the wireguard module) and --cluster-wireguard=kernel forbids the userspace device", ErrCannotEncrypt)
		}
	}
	if err := t.startUserspace(); err != nil {
		return nil, err
	}
	var dev *wgtypes.Device
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if dev, err = t.wg.Device(t.cfg.Name); err == nil {
			return dev, nil
		}
	}
	return nil, fmt.Errorf("%w: the userspace WireGuard device %q did not answer within 5 s (see %s): %v", ErrCannotEncrypt, t.cfg.Name, t.logPath(), err)
}

func (t *Tunnel) logPath() string { return filepath.Join(t.cfg.Dir, "wg-device.log") }

// pidFile is where a userspace device's process writes its pid.
func (t *Tunnel) pidFile() string { return filepath.Join(t.cfg.Dir, "wg-device.pid") }

// startUserspace starts `mynet wg-device` in a session of its own, so that
// it outlives this process (a kill -9 of the daemon leaves the data plane
// up); it is reaped here while this process lives.
func (t *Tunnel) startUserspace() error {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("%w: the kernel has no WireGuard and there is no /dev/net/tun for the userspace device: %v", ErrCannotEncrypt, err)
	}
	logf, err := os.OpenFile(t.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", t.logPath(), err)
	}
	defer logf.Close()
	cmd := exec.Command(t.cfg.Binary, "wg-device", "--name", t.cfg.Name, "--mtu", strconv.Itoa(t.cfg.MTU), "--pid-file", t.pidFile())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: start the userspace WireGuard device: %v", ErrCannotEncrypt, err)
	}
	t.log.WithFields(logrus.Fields{"device": t.cfg.Name, "pid": cmd.Process.Pid}).Info("started a userspace WireGuard device (the kernel has none)")
	go func() { _ = cmd.Wait() }()
	return nil
}
