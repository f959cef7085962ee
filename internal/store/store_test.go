package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Both implementations must behave the same; each test runs against both.
func implementations(t *testing.T) map[string]func() Store {
	t.Helper()
	return map[string]func() Store{
		"memory": func() Store { return NewMemory() },
		"bolt": func() Store {
			s, err := OpenBolt(filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

func TestPutGetDeleteForEach(t *testing.T) {
	t.Parallel()
	for name, open := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			s := open()
			err := s.Update(func(tx Tx) error {
				for _, k := range []string{"b", "a", "c"} {
					if err := tx.Put("bk", k, []byte("v"+k)); err != nil {
						return err
					}
				}
				return tx.Delete("bk", "c")
			})
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			err = s.View(func(tx Tx) error {
				v, err := tx.Get("bk", "a")
				if err != nil || string(v) != "va" {
					t.Errorf("Get(a) = %q, %v; want va", v, err)
				}
				if _, err := tx.Get("bk", "c"); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(deleted) err = %v, want ErrNotFound", err)
				}
				if _, err := tx.Get("nobucket", "x"); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(missing bucket) err = %v, want ErrNotFound", err)
				}
				return tx.ForEach("bk", func(k string, _ []byte) error { keys = append(keys, k); return nil })
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 2 || keys[0] != "a" || keys[1] != "b" {
				t.Errorf("ForEach keys = %v, want [a b]", keys)
			}
		})
	}
}

func TestDeleteBucket(t *testing.T) {
	t.Parallel()
	for name, open := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			s := open()
			err := s.Update(func(tx Tx) error {
				if err := tx.Put("gone", "a", []byte("1")); err != nil {
					return err
				}
				if err := tx.Put("kept", "a", []byte("2")); err != nil {
					return err
				}
				if err := tx.DeleteBucket("gone"); err != nil {
					return err
				}
				return tx.DeleteBucket("never-made")
			})
			if err != nil {
				t.Fatal(err)
			}
			err = s.View(func(tx Tx) error {
				if _, err := tx.Get("gone", "a"); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get in a deleted bucket: %v, want ErrNotFound", err)
				}
				if v, err := tx.Get("kept", "a"); err != nil || string(v) != "2" {
					t.Errorf("the other bucket: %q, %v", v, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	t.Parallel()
	for name, open := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			s := open()
			boom := errors.New("boom")
			err := s.Update(func(tx Tx) error {
				if err := tx.Put("bk", "k", []byte("v")); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("Update err = %v, want boom", err)
			}
			_ = s.View(func(tx Tx) error {
				if _, err := tx.Get("bk", "k"); !errors.Is(err, ErrNotFound) {
					t.Errorf("key written by a failed Update is visible (err=%v)", err)
				}
				return nil
			})
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	s := NewMemory()
	type rec struct{ Name string }
	if err := s.Update(func(tx Tx) error { return PutJSON(tx, "b", "k", rec{"x"}) }); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.View(func(tx Tx) error {
		return ForEachJSON(tx, "b", func(k string, r *rec) error {
			got = append(got, k+"="+r.Name)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "k=x" {
		t.Errorf("got %v, want [k=x]", got)
	}
}

func TestBoltFileIsPrivateAndDurable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "state.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx Tx) error { return tx.Put("b", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %v, want 0600", st.Mode().Perm())
	}
	if _, err := OpenBolt(path); err == nil {
		t.Error("second open of a locked state file succeeded")
	}
	s.Close()
	s2, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.View(func(tx Tx) error { _, err := tx.Get("b", "k"); return err }); err != nil {
		t.Errorf("value lost across reopen: %v", err)
	}
}
