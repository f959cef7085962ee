// Package multihost tests mynet across several hosts, which test/mhtest
// makes of network namespaces with a real etcd; docs/multihost.md says what
// each test shows.
package multihost

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "multihost: these tests need root (run make test as root)")
		os.Exit(1)
	}
	os.Exit(m.Run())
}
