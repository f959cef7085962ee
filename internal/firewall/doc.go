// Package firewall is mynet's only importer of go-iptables: it owns mynet's
// iptables chains and the rules each network needs.
//
// Layout. mynet keeps its rules in chains of its own and adds exactly one
// jump to each built-in chain it uses:
//
//	filter FORWARD      -> MYNET-FORWARD      (accepts for mynet bridges)
//	nat    POSTROUTING  -> MYNET-POSTROUTING  (masquerade of mynet subnets)
//
// The FORWARD jump goes right after Docker's DOCKER-USER jump when there is
// one (so rules users put in DOCKER-USER still apply to mynet's containers),
// else first. Docker's own rules match only Docker's bridges, so where dockerd
// later re-inserts its jumps does not matter to mynet's traffic; and since
// dockerd sets FORWARD's policy to DROP, these accept rules are what lets a
// mynet container's traffic cross the host at all.
//
// Every rule of a network carries the comment "mynet:<first 12 hex of the
// network ID>". That tag is how a network's rules are found again: AddNetwork
// replaces whatever rules carry the tag, RemoveNetwork deletes them all, and a
// later reconcile can spot rules whose network is gone.
//
// Cost. A network's rules change in one iptables-save (to read) and one
// iptables-restore --noflush (to write, atomically per table), however many
// rules it has, instead of one iptables process per rule.
package firewall
