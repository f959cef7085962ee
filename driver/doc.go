// Package driver is mynet's NetworkDriver: it turns Docker's CreateNetwork,
// CreateEndpoint, Join and their inverses into a Linux bridge per network, a
// veth pair per endpoint, and the network's iptables rules.
//
// Options are parsed and validated into a NetworkConfig before anything is
// touched. A network is then built in named steps (bridge, firewall rules,
// state), and a failing step undoes the ones before it, so a rejected
// CreateNetwork leaves no bridge, rule or record behind. Every network and
// endpoint is written to the store before the call returns, because Docker
// never replays them to a remote driver after a restart; on start the driver
// reloads them and re-asserts each network's bridge and rules.
//
// Names. A bridge is named by the user (com.docker.network.bridge.name) or
// "mn-" plus the first 12 hex digits of the network ID; an endpoint's veth
// ends are "mnh" (host side, on the bridge) and "mnc" (container side, which
// Docker moves into the sandbox and renames eth0, eth1, ...) plus the first
// 12 hex digits of the endpoint ID. All fit the kernel's 15 bytes.
//
// Cluster networks. A network on a cluster pool (clusterconfig.go) also
// has a VXLAN device on its bridge and a clusternet.Network: its peers
// (other hosts' containers), their names and its watch of etcd live there
// (internal/clusternet), with locks of their own. The driver makes it with
// the network, tells it of this host's endpoints on it (Locals, and their
// names), publishes and withdraws their records through it, and removes it
// before the network.
//
// Files. driver.go the Driver, its configuration and state; options.go
// parses and validates a network's configuration, values.go the single
// values in it (IDs, interface names, options); network.go builds and
// removes networks, and owns setupBridge, the one place a bridge is set up
// (the create and Reconcile's rebuild both use it); endpoint.go the
// endpoints and their records, join.go their Join and Leave; ports.go published ports; reconcile.go
// Restore and Reconcile; keyed_mutex.go the per-endpoint lock;
// clusterconfig.go a cluster network's configuration (MTU and behaviour
// settled in the cluster); cluster.go what the driver gives and asks of its
// cluster networks (internal/clusternet); names.go the name forwarders of
// cluster endpoints' sandboxes and the names they answer.
//
// Locking. Driver.mu guards the maps of networks and endpoints and is held
// for the whole of CreateNetwork and DeleteNetwork (rare, and they must check
// and claim subnets and bridge names atomically). Endpoint calls take it only
// to read or update the maps and do their kernel work outside it, serialized
// per endpoint ID, so dockerd's concurrent attaches proceed in parallel. A
// cluster network's locks are taken after Driver.mu or without it, never
// before (see internal/clusternet): a network is removed from the table
// before DeleteNetwork takes Driver.mu, since its watch takes it.
package driver
