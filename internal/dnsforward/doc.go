// Package dnsforward answers, inside a container's network namespace, the
// names of other hosts' containers on the container's cluster networks,
// where Docker's embedded DNS does not know them, and leaves every other
// answer to Docker.
//
// Docker's resolver (127.0.0.11, DNATed by Docker's rules in the container's
// namespace to dockerd's socket there) knows the containers of its own host
// only, and forwards other names from the host's namespace, where the
// question carries nothing of the container that asked; so the answer for
// other hosts' names must be given in the container's namespace, where it
// is known which container asks. For each sandbox with an endpoint on a
// cluster network, a box holds sockets opened in that namespace: a UDP and
// a TCP one the redirect rules (netutil.DNSNAT: an nftables table of
// mynet's whose nat chain comes before dstnat, so before Docker's DNAT of
// 127.0.0.11 whether dockerd put it in iptables or in nftables, whichever
// was registered first) send the container's questions to, and one, marked so
// the rules let it pass and connected to Docker's resolver, that hands
// Docker every UDP question and reads its replies (over TCP, each client
// connection gets a marked connection to Docker of its own).
//
// Docker's answer wins. Every question goes to Docker first, under a
// random ID of the box's; a reply counts only for the question waiting
// under its ID with the same question section. mynet answers instead only
// a question for one name, of class IN and type A (AAAA: the name, no
// address; cluster networks are IPv4), that is another host's container on
// one of the sandbox's cluster networks and not a container of this host
// there, and only when Docker says it does not know the name (NXDOMAIN,
// SERVFAIL, REFUSED) or has not answered within dockerFirst (it went on to
// the host's DNS servers: Docker answers its own names from memory). So an
// alias, a short ID, a hostname, a name on another network: whatever
// Docker would answer stays Docker's answer, on any engine. mynet's answers
// live 2 s, fit the client's size (512 or its EDNS size; TC set when they
// do not), and a container that is gone stops resolving within about 2 s
// of its record's removal. A message with no question or several gets
// FORMERR, another opcode NOTIMP, as Docker's server does.
//
// The redirect fails open by construction: it matches only while
// 127.0.0.11 is in the table's timed set (lease), whose
// element lives leaseTTL (1 s) and is renewed every renewEvery by the
// box's serving loop itself. Whatever ends or freezes mynet (kill -9, a
// panic, SIGSTOP, a stuck loop, a rollback to a version without it), the
// element lapses and the container asks Docker's resolver alone within a
// second; when mynet serves again, other hosts' names are back within
// renewEvery. A clean stop or the last Detach removes the table.
//
// Nothing outside the sandboxes of cluster networks is touched: containers
// of other networks and the host keep Docker's and their own DNS as they
// were. A restart puts the boxes back (the driver keeps each endpoint's
// sandbox). A sandbox's questions are bounded: maxRate a second (maxBurst
// at once), UDP and TCP together, beyond which they are dropped before
// they cost a lookup; maxPending waiting on Docker, beyond which a flood
// gives up the oldest; maxConns TCP connections.
//
// Files: forwarder.go the Forwarders and a sandbox's box (its redirect
// kept in place, its closing); open.go opening a box's sockets and
// redirect, retried, and renewing the redirect; questions.go what a box does with a
// question and with Docker's reply; reverse.go reading a PTR question's
// address (in-addr.arpa, ip6.arpa); tcp.go questions over TCP.
package dnsforward
