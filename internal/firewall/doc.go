// Package firewall is mynet's only runner of iptables and only importer of
// go-iptables: it owns mynet's iptables chains and the rules each network
// and endpoint needs, in both families.
//
// Layout. mynet keeps its rules in chains of its own and adds six jumps to
// chains that are not its own (base.go):
//
//	filter DOCKER-USER  -> MYNET-ISOLATION    (first: the drop-only guard between networks)
//	filter FORWARD      -> MYNET-FORWARD      (accepts for mynet bridges)
//	nat    PREROUTING   -> MYNET-DNAT         (published ports, local destinations)
//	nat    OUTPUT       -> MYNET-DNAT         (the same for the host's own traffic)
//	nat    POSTROUTING  -> MYNET-POSTROUTING  (masquerade or SNAT of mynet subnets)
//	raw    PREROUTING   -> MYNET-LOOPBACK     (ports published on 127.0.0.0/8 or ::1)
//
// A port published on a loopback address (-p 127.0.0.1:8080:80) is the
// host's alone. Its DNAT matches any packet for that address and port, and
// a host on the same segment that routes 127.0.0.0/8 here would reach the
// container through it, so MYNET-LOOPBACK drops such packets unless they
// come in on lo, before NAT sees them: one rule per binding, as Docker's
// bridge has in raw PREROUTING.
//
// The FORWARD jump goes right after Docker's DOCKER-USER jump when there is
// one (so rules users put in DOCKER-USER still apply to mynet's containers),
// else first; the guard is first in DOCKER-USER, which Docker evaluates
// before its own rules and never flushes. Since dockerd sets FORWARD's
// policy to DROP, these accepts are what let a mynet container's traffic
// cross the host at all.
//
// Shared rules. Every mynet bridge is in one device group (ip link set BR
// group N, Config.BridgeGroup; the links side sets it), so what is the same
// for every network matches the group (-m devgroup) once instead of naming
// each bridge: MYNET-BRIDGES accepts what the guard let through from or to
// the group, MYNET-EGRESS drops new connections from the group into
// Docker's bridges (not DNATed to a published port), and MYNET-POSTROUTING
// masquerades the host's own connections DNATed into the group. A network
// in NAT mode then has three rules of its own: the guard's drop of what
// enters its bridge from elsewhere (not DNATed), its masquerade, and its
// hairpin masquerade; ICC off adds one.
//
// Tags. Every rule of a network carries the comment "mynet:<first 12 hex of
// the network ID>", every rule of an endpoint "mynet:<network>:<endpoint>",
// the shared rules in chains beside them "mynet:base".
// The tag is how rules are found again: AddNetwork and SetEndpoint replace
// whatever carries their tag, RemoveNetwork deletes the network's and its
// endpoints', and Reconcile (reconcile.go) rewrites tags whose rules differ
// from what the driver's state wants and deletes tags nothing wants.
//
// Cost, and why batches go through iptables-restore. Every change is one
// read-modify-write cycle per family, written once (backend.edit in
// ruleset.go): one iptables-save to read, and one iptables-restore --noflush
// that applies all of the change atomically per table, however many rules
// it has. go-iptables runs one iptables process per rule and cannot make a
// change atomic, so it is used where one command is the right size: the
// health check's look at mynet's chains (Check, backend.go) and the
// version. The backend (nft or legacy) is the one dockerd's rules are in
// (ChooseBackend): mixing them breaks rules on both sides.
//
// Beyond bridge networks: one rule in INPUT drops VXLAN to this host's
// underlay address from any host not in the cluster's members' set (tag
// mynet:vxlan). The DNS redirect in containers of cluster networks is an
// nftables table (netutil.DNSNAT); dns.go names it and its mark, and
// removes the iptables rules earlier versions kept for it (tag mynet:dns).
//
// Files: firewall.go the Firewall and its two families; backend.go which
// iptables binaries (nft or legacy) and the health check's look; base.go
// mynet's chains and their jumps; rules.go the rules of networks, endpoints
// and published ports; ruleset.go reading and restoring whole rulesets;
// reconcile.go rewriting what differs; dockerbridges.go Docker's bridges
// mynet must not isolate; vxlan.go the VXLAN guard in INPUT; dns.go the
// DNS redirect's names, and earlier versions' rules removed.
package firewall
