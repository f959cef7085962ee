package netutil

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DNSNATPriority is the priority of the chain of a DNSNAT: one before
// dstnat (-100), the priority of every other DNAT of locally sent packets
// (iptables' nat OUTPUT, legacy or nft, and dockerd's nftables table
// docker-dns). The kernel runs the NAT chains of a hook by priority and
// stops at the first that maps a connection, so the redirect comes first
// whatever was registered first.
const DNSNATPriority = -101

// DNSNAT is a container namespace's redirect of its DNS questions to
// 127.0.0.11:53 (UDP and TCP) to other ports of 127.0.0.11 (mynet's name
// forwarder there), kept in an nftables table of its own, reached through
// a netlink socket opened in the namespace:
//
//	table ip NAME {
//	  set lease { type ipv4_addr; flags timeout; }
//	  chain output {
//	    type nat hook output priority -101;
//	    ip daddr 127.0.0.11 udp dport 53 meta mark != MARK ip daddr @lease dnat to 127.0.0.11:UDP
//	    ip daddr 127.0.0.11 tcp dport 53 meta mark != MARK ip daddr @lease dnat to 127.0.0.11:TCP
//	  }
//	}
//
// The rules match only while 127.0.0.11 is in the set lease, whose element
// expires unless renewed (Renew): whoever renews it ending or freezing
// ends the redirect by itself. Questions marked MARK (the forwarder's own,
// to Docker's resolver) go on to Docker's rules.
//
// A DNSNAT is safe for use from several goroutines (a forwarder renews
// from its serving loop while its keeper checks the rules): its calls take
// turns on its one netlink socket. (nftables.Conn is not: a GetRules there
// sends and reads without its lock, and could take the replies a Flush at
// the same time waited for, which then waited for ever.)
type DNSNAT struct {
	mu    sync.Mutex // one call at a time on c
	c     *nftables.Conn
	table *nftables.Table
	chain *nftables.Chain
	set   *nftables.Set
	mark  uint32
	path  string
}

var dockerDNSAddr = netip.MustParseAddr("127.0.0.11")

// OpenDNSNAT is OpenDNSNAT in the namespace key names.
func (s Sandboxes) OpenDNSNAT(key, table string, mark uint32) (*DNSNAT, error) {
	h, err := s.Open(key)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return openDNSNAT(h, key, table, mark)
}

// OpenDNSNAT opens the namespace at path and makes table there, with its
// set and chain and no rules yet (nft add table ip NAME; ...).
func OpenDNSNAT(path, table string, mark uint32) (*DNSNAT, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer h.Close()
	return openDNSNAT(h, path, table, mark)
}

func openDNSNAT(ns netns.NsHandle, path, table string, mark uint32) (*DNSNAT, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)), nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("nftables in %s: %w", path, err)
	}
	d := &DNSNAT{c: c, mark: mark, path: path}
	d.table = &nftables.Table{Family: nftables.TableFamilyIPv4, Name: table}
	d.set = &nftables.Set{Table: d.table, Name: "lease", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	d.chain = &nftables.Chain{Name: "output", Table: d.table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRef(DNSNATPriority)}
	if err := d.make(); err != nil {
		_ = c.CloseLasting()
		return nil, err
	}
	return d, nil
}

// make (re)creates the table, set and chain, keeping what exists.
func (d *DNSNAT) make() error {
	d.c.AddTable(d.table)
	if err := d.c.AddSet(d.set, nil); err != nil {
		return fmt.Errorf("nftables set in %s: %w", d.path, err)
	}
	d.c.AddChain(d.chain)
	if err := d.c.Flush(); err != nil {
		return fmt.Errorf("make nftables table %s in %s: %w", d.table.Name, d.path, err)
	}
	return nil
}

// comment is the rule's comment: what it redirects where, which is also
// how Ensure reads back what is there.
func dnsNATComment(proto string, port uint16) string {
	return fmt.Sprintf("mynet:dns %s %d", proto, port)
}

// Ensure makes the chain's rules the redirects to udpPort and tcpPort, in
// one transaction, unless they are already: it reports whether it changed
// anything (a table someone removed is made again).
func (d *DNSNAT) Ensure(udpPort, tcpPort uint16) (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := []string{dnsNATComment("udp", udpPort), dnsNATComment("tcp", tcpPort)}
	rules, err := d.c.GetRules(d.table, d.chain)
	if err == nil && len(rules) == len(want) {
		same := true
		for i, r := range rules {
			got, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			same = same && got == want[i]
		}
		if same {
			return false, nil
		}
	}
	if err := d.make(); err != nil {
		return true, err
	}
	d.c.FlushChain(d.chain)
	d.c.AddRule(d.rule(unix.IPPROTO_UDP, udpPort, want[0]))
	d.c.AddRule(d.rule(unix.IPPROTO_TCP, tcpPort, want[1]))
	if err := d.c.Flush(); err != nil {
		return true, fmt.Errorf("redirect DNS to ports %d/%d in %s: %w", udpPort, tcpPort, d.path, err)
	}
	return true, nil
}

// rule is one redirect: proto to 127.0.0.11:53, unmarked, leased, to port.
func (d *DNSNAT) rule(proto byte, port uint16, comment string) *nftables.Rule {
	ip := dockerDNSAddr.AsSlice()
	return &nftables.Rule{Table: d.table, Chain: d.chain, UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
		Exprs: []expr.Any{
			// ip daddr 127.0.0.11
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip},
			// PROTO dport 53
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
			// meta mark != MARK
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(d.mark)},
			// ip daddr @lease
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: d.set.Name, SetID: d.set.ID},
			// dnat to 127.0.0.11:port
			&expr.Immediate{Register: 1, Data: ip},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}}
}

// Renew makes the lease's element 127.0.0.11 live ttl from now (a whole
// number of milliseconds, the kernel's unit), in one transaction:
// nft flush set ip NAME lease; nft add element ip NAME lease { 127.0.0.11 timeout TTL }.
func (d *DNSNAT) Renew(ttl time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	d.c.FlushSet(d.set)
	if err := d.c.SetAddElements(d.set, []nftables.SetElement{{Key: dockerDNSAddr.AsSlice(), Timeout: ttl}}); err != nil {
		return fmt.Errorf("renew the DNS lease in %s: %w", d.path, err)
	}
	if err := d.c.Flush(); err != nil {
		return fmt.Errorf("renew the DNS lease in %s: %w", d.path, err)
	}
	return nil
}

// Remove deletes the table, rules and lease with it (nft delete table ip
// NAME); a table already gone is done.
func (d *DNSNAT) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.c.DelTable(d.table)
	if err := d.c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove the DNS redirect in %s: %w", d.path, err)
	}
	return nil
}

// Close closes the netlink socket; the table stays.
func (d *DNSNAT) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	_ = d.c.CloseLasting()
}
