package wgtunnel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Key is a WireGuard key (private, public or pre-shared).
type Key = wgtypes.Key

// ParseKey reads a base64 key, as a host's record has its public key.
func ParseKey(s string) (Key, error) { return wgtypes.ParseKey(s) }

// KeyFile is the private key's file in the state directory.
const KeyFile = "wireguard.key"

// LoadOrCreateKey returns the private key kept at path, making and saving
// one (0600, written whole before it is renamed in place) the first time.
// The key is never logged; only its public half leaves the host.
func LoadOrCreateKey(path string) (wgtypes.Key, error) {
	k, err := readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	return newKey(path)
}

// RotateKey makes a new private key and saves it at path in place of the
// old one.
func RotateKey(path string) (wgtypes.Key, error) { return newKey(path) }

func newKey(path string) (wgtypes.Key, error) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("generate a WireGuard key: %w", err)
	}
	if err := writeSecret(path, k.String()+"\n"); err != nil {
		return wgtypes.Key{}, err
	}
	return k, nil
}

func writeSecret(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key directory: %w", err)
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write WireGuard key: %w", err)
	}
	_, werr := f.WriteString(s)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write WireGuard key %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save WireGuard key: %w", err)
	}
	return nil
}

// readKey reads a base64 key from path; a key file others may read is
// refused (it would have been readable by them already: make a new one).
func readKey(path string) (wgtypes.Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return wgtypes.Key{}, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return wgtypes.Key{}, fmt.Errorf("WireGuard key %s is readable by others (mode %v): chmod 600 it, or remove it to make a new one", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return wgtypes.Key{}, err
	}
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("WireGuard key %s: not a base64 key", path)
	}
	return k, nil
}

// LoadPresharedKey reads the optional pre-shared key every host of the
// cluster is given (--cluster-psk-file; "" means none).
func LoadPresharedKey(path string) (*wgtypes.Key, error) {
	if path == "" {
		return nil, nil
	}
	k, err := readKey(path)
	if err != nil {
		return nil, fmt.Errorf("--cluster-psk-file: %w", err)
	}
	return &k, nil
}
