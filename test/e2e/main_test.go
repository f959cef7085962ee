// Package e2e drives mynet through a real dockerd with the docker CLI:
// networks created with -d mynet-e2e (and --ipam-driver mynet-e2e), real
// containers from a local busybox image, real traffic between them and to an
// "outside" host that is a network namespace the test makes itself.
//
// Run it through `make test` (or `make e2e`), which runs setup.sh first: it
// installs and starts dockerd and builds the image. The tests need root and
// fail, never skip, when dockerd is not there.
//
// With MYNET_E2E_PLUGIN=NAME (make e2e-plugin) the same suite runs against
// the managed plugin NAME instead of a mynet process: the suite builds it
// from this tree (packaging/build-plugin.sh), "restarting mynet" is docker
// plugin disable -f and enable, and the plugin is removed at the end. NAME is
// the tests' own (mynet-e2e-plugin:latest in the Makefile), never the name
// users install.
//
// The suite leaves the host as it found it: docker plugin ls, docker network
// ls and the host's links are compared before and after, and a difference
// fails the run.
package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/plugin"
	"github.com/mynet/mynet/test/mhtest"

	"github.com/mynet/mynet/test/dockercli"
)

const (
	dockerBin = dockercli.Bin
	image     = "mynet-test/busybox:v2"
	prefix    = "mynet-e2e-"
)

var (
	// driverName is the socket's base name (mynet-e2e) or the plugin's name.
	driverName = "mynet-e2e"
	socketPath = "/run/docker/plugins/mynet-e2e.sock"
	pluginMode = false
	daemon     controller
	mynetBin   string // a mynet binary built from this tree, for mynet status
	// metricsAddr is where mynet serves metrics in the tests: a free
	// loopback port chosen at start.
	metricsAddr string
)

// controller starts and stops mynet, whichever way it runs.
type controller interface {
	start() error
	kill9() error // as a crash would (plugin: disable -f)
	stop() error
	remove() error    // stop for good, removing what start made (the plugin)
	hup() error       // ask for a reconcile as a user does (SIGHUP; the plugin: /mynet.Reconcile)
	reconcile() error // reconcile now, answered when done (/mynet.Reconcile)
	stateDir() string
	logs() []byte
}

// reconcileInterval is short in the tests, so that repairs are seen soon.
const reconcileInterval = 2 * time.Second

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: these tests need root (run make test as root)")
		return 1
	}
	out, err := exec.Command(dockerBin, "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s is not reachable (run test/e2e/setup.sh, or make test): %v\n%s", engine.name, err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: against %s, version %s", engine.name, out)
	removeLeftoverContainers()
	tmp, err := os.MkdirTemp("", "mynet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "mynet")
	build := exec.Command("go", "build", "-o", bin, "../..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build mynet:", err)
		return 1
	}
	mynetBin = bin
	if metricsAddr, err = freeLoopbackAddr(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	before, err := takeHostSnapshot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if name := os.Getenv("MYNET_E2E_PLUGIN"); name != "" {
		pluginMode, driverName = true, name
		p := &pluginDaemon{name: name, stateSource: filepath.Join(tmp, "plugin-state")}
		if err := p.install(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		daemon = p
	} else {
		daemon = &mynetDaemon{bin: bin, state: filepath.Join(tmp, "state"), logPath: filepath.Join(tmp, "mynet.log")}
	}
	code := 0
	if err := daemon.start(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	} else {
		code = m.Run()
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "----- mynet log (last 8 KiB) -----\n%s\n", tail(daemon.logs(), 8192))
		fmt.Fprintf(os.Stderr, "e2e: FAIL against %s\n", engine.name)
	}
	if err := daemon.remove(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop mynet:", err)
		code = 1
	}
	if diff := before.settlesTo(); diff != "" {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: the suite left the host changed:\n%s", diff)
		code = 1
	} else {
		fmt.Fprintln(os.Stderr, "e2e: the host is as before the suite: same plugins, networks and links")
	}
	return code
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// mynetDaemon is the mynet process under test.
type mynetDaemon struct {
	bin, state, logPath string
	cmd                 *exec.Cmd
}

func (d *mynetDaemon) stateDir() string { return d.state }

func (d *mynetDaemon) logs() []byte {
	b, _ := os.ReadFile(d.logPath)
	return b
}

func (d *mynetDaemon) start() error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.bin, "--socket", socketPath, "--state-dir", d.state, "--log-level", "debug",
		"--reconcile-interval", reconcileInterval.String(), "--metrics-addr", metricsAddr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start mynet: %w", err)
	}
	logf.Close()
	d.cmd = cmd
	return waitForSocket()
}

func waitForSocket() error {
	for range 200 {
		if c, err := net.DialTimeout("unix", socketPath, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("mynet did not listen on %s within 10s", socketPath)
}

// hup asks the daemon to reconcile now.
func (d *mynetDaemon) hup() error { return d.cmd.Process.Signal(syscall.SIGHUP) }

func (d *mynetDaemon) reconcile() error {
	return plugin.NewClient(socketPath, 30*time.Second).Call("/mynet.Reconcile", struct{}{}, nil)
}

// kill9 kills the daemon the hard way, as a crash would.
func (d *mynetDaemon) kill9() error {
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	_ = d.cmd.Wait()
	return nil
}

func (d *mynetDaemon) remove() error { return d.stop() }

func (d *mynetDaemon) stop() error {
	if d.cmd == nil || d.cmd.ProcessState != nil {
		return nil
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if _, statErr := os.Stat(socketPath); statErr == nil {
			return fmt.Errorf("socket %s left behind after SIGTERM", socketPath)
		}
		return err
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		return fmt.Errorf("mynet ignored SIGTERM for 15s")
	}
}

// docker runs the docker CLI and returns its trimmed stdout.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tryDocker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// tryDocker runs the docker CLI; the error carries what docker printed.
func tryDocker(args ...string) (string, error) { return dockercli.Run(args...) }

// createNetwork makes a network and removes it, by name, when the test ends.
func createNetwork(t *testing.T, name string, args ...string) string {
	t.Helper()
	id := docker(t, append(append([]string{"network", "create"}, args...), name)...)
	t.Cleanup(func() { _, _ = tryDocker("network", "rm", name) })
	return id
}

// runContainer starts a detached container that removes itself by name.
func runContainer(t *testing.T, name, network string, cmd ...string) {
	t.Helper()
	// Before the run: a run that fails at start leaves a created container.
	t.Cleanup(func() { _, _ = tryDocker("rm", "-f", name) })
	args := append([]string{"run", "-d", "--name", name, "--network", network, image}, cmd...)
	docker(t, args...)
}

// removeLeftoverContainers removes the suite's own containers (named with
// its prefix) that an interrupted earlier run left, created but never
// started ones too, so that their names are free.
func removeLeftoverContainers() {
	out, err := exec.Command(dockerBin, "ps", "-a", "--filter", "name=^"+prefix, "--format", "{{.Names}}").Output()
	if err != nil {
		return
	}
	for _, name := range strings.Fields(string(out)) {
		if strings.HasPrefix(name, prefix) {
			fmt.Fprintf(os.Stderr, "e2e: removing %s, left by an earlier run\n", name)
			_ = exec.Command(dockerBin, "rm", "-f", name).Run()
		}
	}
}

// containerIP is the container's address on a network.
func containerIP(t *testing.T, container, network string) string {
	t.Helper()
	return docker(t, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", network), container)
}

// runOnce runs a command in a throwaway container and returns its output.
func runOnce(network string, cmd ...string) (string, error) {
	return tryDocker(append([]string{"run", "--rm", "--network", network, image}, cmd...)...)
}

// ip runs the iproute2 tool for test fixtures (the product never does).
func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kernelLeftovers lists links and iptables rules that still belong to the
// network with this ID, allowing mynet up to 3 s to finish deleting links
// in the background.
func kernelLeftovers(t *testing.T, networkID string) []string {
	t.Helper()
	var left []string
	for range 30 {
		if left = kernelLeftoversNow(t, networkID); len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return left
}

func kernelLeftoversNow(t *testing.T, networkID string) []string {
	t.Helper()
	var left []string
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(links), "\n") {
		if strings.Contains(l, "mn-"+networkID[:12]) {
			left = append(left, "link: "+l)
		}
	}
	rules, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(rules), "\n") {
		if strings.Contains(l, "mynet:"+networkID[:12]) {
			left = append(left, "rule: "+l)
		}
	}
	return left
}

// vethCountSettles reports whether mynet's host-side veths come back to
// want within 3 s (links are deleted in the background).
func vethCountSettles(t *testing.T, want int) bool {
	t.Helper()
	for range 30 {
		if vethCount(t) == want {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// vethCount counts mynet's host-side veths.
func vethCount(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(out), ": mnh")
}

// mynetPorts returns the published ports mynet reports for a container's
// endpoint on a network, through `mynet status --json`.
func mynetPorts(t *testing.T, container, network string) []statusPort {
	t.Helper()
	epID := docker(t, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).EndpointID}}", network), container)
	out, err := exec.Command(mynetBin, "status", "--json", "--socket", socketPath, "--state-dir", daemon.stateDir()).Output()
	if err != nil {
		t.Fatalf("mynet status: %v", err)
	}
	var st struct {
		Source    string
		Endpoints []struct {
			ID    string
			Ports []statusPort
		}
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("mynet status --json: %v\n%s", err, out)
	}
	if st.Source != "daemon" {
		t.Errorf("status came from %q, want the daemon", st.Source)
	}
	for _, ep := range st.Endpoints {
		if ep.ID == epID {
			return ep.Ports
		}
	}
	t.Fatalf("endpoint %s of %s not in mynet status", epID, container)
	return nil
}

type statusPort struct {
	Proto         string `json:"proto"`
	HostIP        string `json:"host_ip"`
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
}

// dnatRules counts mynet's DNAT rules for a host port.
func dnatRules(t *testing.T, hostPort int) int {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(out), fmt.Sprintf("--dport %d -m comment --comment \"mynet:", hostPort))
}

// eventually retries fn for up to 10 s (a container's server may need a
// moment to listen).
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	mhtest.Eventually(t, what, fn)
}
