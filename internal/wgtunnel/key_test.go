package wgtunnel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state", KeyFile)
	k, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v: want mode 600", st, err)
	}
	again, err := LoadOrCreateKey(path)
	if err != nil || again != k {
		t.Errorf("loaded again: a different key (%v): the host's identity must survive restarts", err)
	}
	rotated, err := RotateKey(path)
	if err != nil || rotated == k {
		t.Errorf("rotated: %v, the same key", err)
	}
	if loaded, _ := LoadOrCreateKey(path); loaded != rotated {
		t.Errorf("the rotated key was not saved")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("a key others may read: %v, want refused", err)
	}
	if err := os.WriteFile(path, []byte("nonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Errorf("a key file that holds no key was accepted")
	}
	if psk, err := LoadPresharedKey(""); psk != nil || err != nil {
		t.Errorf("no pre-shared key file: %v, %v", psk, err)
	}
}
