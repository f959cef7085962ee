package twohosts

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/poll"
)

// TestNamesAcrossEngineVersions is a cluster in a rolling upgrade: host1
// runs Debian's dockerd 20.10, whose RequestAddress carries no container
// name (mynet takes it from the Engine API, through the Docker sync),
// host2 Engine 29. Names resolve both ways, aliases too, and a name both
// hosts have stays each host's own container's (Docker's answer).
func TestNamesAcrossEngineVersions(t *testing.T) {
	c := startCluster(t, 2, &cluster{debian: map[int]bool{0: true}})
	h1, h2 := c.hosts[0], c.hosts[1]
	if v := h1.must("version", "-f", "{{.Server.Version}}"); !strings.HasPrefix(v, "20.10") {
		t.Fatalf("host1 runs Docker %s, want Debian's 20.10", v)
	}
	c.createEverywhere(h2, "ov_mixed") // made on host1 (20.10) by the sync
	h1.run("old1", "--network", "ov_mixed", "--network-alias", "oldweb")
	h2.run("new2", "--network", "ov_mixed")
	h1.run("both", "--network", "ov_mixed")
	h2.run("both", "--network", "ov_mixed")
	old1, new2 := h1.ip("old1", "ov_mixed"), h2.ip("new2", "ov_mixed")
	both1, both2 := h1.ip("both", "ov_mixed"), h2.ip("both", "ov_mixed")
	for _, q := range []struct {
		h         *host
		from, ask string
		want, not string
	}{
		{h2, "new2", "old1", old1, ""},     // a 20.10 host's container, named by the sync
		{h2, "new2", "oldweb", old1, ""},   // its alias
		{h1, "old1", "new2", new2, ""},     // an Engine 29 host's, from a 20.10 host's container
		{h1, "old1", "both", both1, both2}, // the host's own, not the other's
		{h2, "new2", "both", both2, both1},
	} {
		poll.Eventually(t, fmt.Sprintf("%s on %s resolves %s to %s", q.from, q.h.id, q.ask, q.want), 10*time.Second, func() error {
			out, err := q.h.docker("exec", q.from, "nslookup", q.ask)
			if err != nil || !strings.Contains(out, q.want) {
				return fmt.Errorf("%v: %s", err, out)
			}
			if q.not != "" && strings.Contains(out, q.not) {
				t.Fatalf("%s on %s: %s also answered with the other host's %s:\n%s", q.from, q.h.id, q.ask, q.not, out)
			}
			return nil
		})
	}
	h1.reaches(t, "old1", new2)
}
