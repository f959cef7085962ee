// Package dnsforward answers, inside a container's network namespace, the
// names of other hosts' containers on the container's cluster networks,
// and passes every other question to Docker's embedded DNS unchanged.
//
// Docker's resolver (127.0.0.11, DNATed by Docker's rules in the container's
// namespace to dockerd's socket there) knows the containers of its own host
// only, and forwards other names from the host's namespace, where the
// question carries nothing of the container that asked; so the answer for
// other hosts' names must be given in the container's namespace, where it
// is known which container asks. For each sandbox with an endpoint on a
// cluster network, a Box holds two sockets opened in that namespace: one
// the redirect rule (internal/firewall EnsureDNSRedirect, at the top of nat
// OUTPUT) sends the container's UDP questions to, and one, marked so the
// rule lets it pass, that hands Docker's resolver every question mynet does
// not answer and relays its reply. mynet answers only a question for one
// name, of class IN and type A (or AAAA, with no address: cluster networks
// are IPv4), that is another host's container on one of the sandbox's
// cluster networks and not a container of this host there; a name of this
// host stays Docker's own answer, a name of a network the container is not
// on is never answered, and anything it cannot parse goes to Docker as it
// came. Answers live 2 s, so a container that is gone stops resolving
// within about 2 s of its record's removal.
//
// Nothing outside the sandboxes of cluster networks is touched: containers
// of other networks and the host keep Docker's and their own DNS as they
// were. When mynet stops, the redirects are removed first, so those
// containers fall back to Docker's resolver alone; a restart puts them back
// (the driver keeps each endpoint's sandbox). Questions waiting on Docker
// are bounded (maxPending per sandbox); beyond, a flood gives up the oldest.
//
// Files: forwarder.go the Forwarders and a sandbox's box (its sockets, its
// redirect kept first); questions.go what a box does with a question.
package dnsforward
