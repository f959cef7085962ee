package status

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/store"
	"github.com/mynet/mynet/ipam"
	"github.com/mynet/mynet/plugin"
)

// Command is `mynet status` with its environment.
type Command struct {
	Getenv         func(string) string
	Stdout, Stderr io.Writer
	// PluginsDir is where managed plugins' sockets are looked for
	// (PluginsDir when empty).
	PluginsDir string
}

// UsageError is a command-line error the flag package has already printed
// together with the usage; the caller only sets the exit code.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Run parses the command's own flags and prints the report.
func (c Command) Run(args []string) error {
	fs := flag.NewFlagSet("mynet status", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.Stderr, "usage: mynet status [--json] [--socket PATH] [--state-dir DIR]\n\n"+
			"Shows mynet's health, networks, endpoints, published ports and pools. It asks the\n"+
			"daemon on --socket; without --socket, the plain daemon's socket and then every managed\n"+
			"plugin's under %s/<id>/; when no daemon answers, it reads the state file.\n\nflags:\n", c.pluginsDir())
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print JSON")
	socket := fs.String("socket", c.Getenv("MYNET_SOCKET"), "the daemon's socket (env MYNET_SOCKET; default: found, see above)")
	stateDir := fs.String("state-dir", or(c.Getenv("MYNET_STATE_DIR"), store.DefaultDir), "directory of the state file, read when no daemon answers (env MYNET_STATE_DIR)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see mynet status -h)", fs.Arg(0))
	}
	r, err := c.fromDaemon(*socket)
	if err != nil {
		var fileErr error
		r, fileErr = FromFile(filepath.Join(*stateDir, store.FileName))
		if fileErr != nil {
			return fmt.Errorf("%v, and the state file cannot be read: %w", err, fileErr)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	Print(c.Stdout, r)
	return nil
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func (c Command) pluginsDir() string { return or(c.PluginsDir, plugin.PluginsDir) }

// fromDaemon asks the daemon on socket or, when socket is empty, on the
// first candidate that answers: the plain daemon's default socket, then
// each managed plugin's.
func (c Command) fromDaemon(socket string) (Report, error) {
	candidates := []string{socket}
	if socket == "" {
		candidates = []string{filepath.Join(c.pluginsDir(), filepath.Base(plugin.DefaultSocket))}
		plugins, _ := filepath.Glob(filepath.Join(c.pluginsDir(), "*", filepath.Base(plugin.DefaultSocket)))
		candidates = append(candidates, plugins...)
	}
	var errs []error
	for _, s := range candidates {
		var r Report
		if err := plugin.NewClient(s, 5*time.Second).Call("/mynet.Status", struct{}{}, &r); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		r.Socket = s
		return r, nil
	}
	return Report{}, fmt.Errorf("no mynet daemon answers (%w)", errors.Join(errs...))
}

// FromFile reads a report from a state file, read-only, for when the
// daemon is not running.
func FromFile(path string) (Report, error) {
	s, err := store.OpenBoltReadOnly(path)
	if err != nil {
		return Report{}, err
	}
	defer s.Close()
	drv, err := driver.New(driver.Config{Store: s})
	if err != nil {
		return Report{}, err
	}
	alloc, err := ipam.New(ipam.Config{Store: s})
	if err != nil {
		return Report{}, err
	}
	return Build("state file (daemon not running)", drv, alloc, nil), nil
}
