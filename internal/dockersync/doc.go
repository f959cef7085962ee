// Package dockersync makes a cluster network exist in every host's Docker
// once a user has created it in one: what Docker's overlay did with a
// cluster store. It is the only importer of Docker's API client
// (github.com/moby/moby/client), and it runs in a goroutine of its own,
// never in a plugin handler: Docker waits on the plugin while it creates a
// network, so a handler that called Docker would deadlock.
//
// Each host's Syncer keeps, from etcd (a list, then a watch), the cluster's
// Docker records (internal/cluster DockerNetwork: name, options, IPAM
// options, subnet, gateway), and in a pass, run at each change and every
// couple of seconds, compares them with its own Docker's networks:
//
//   - a cluster network of this host's driver that the cluster has no
//     record of is published (this host's user created it); of hosts that
//     created it at once, one record wins and the others adopt it when it
//     describes the same network;
//   - a record whose network this host lacks is created in this host's
//     Docker, with this host's name for mynet's driver and IPAM;
//   - a network that was here at the last pass and is gone, and that the
//     syncer did not remove itself, was removed by a user: its record is
//     marked removed, and every host removes its copy where no container
//     uses it, trying again while containers do (Status says so). The
//     cluster's configuration, and the record with it, goes when the last
//     host leaves the network (LeaveNetwork's rule: only when no host has
//     it).
//
// Swarm networks (scope swarm: --scope swarm --config-from) are swarm's:
// swarm makes one on a node when a task there needs it and removes it when
// the last task goes, so the syncer neither publishes nor follows them.
//
// A Docker that does not answer (down, restarting, no access to its socket)
// is retried with a backoff; the plugin's answers never wait on it, and
// cluster networks created by hand on each host work as before. Status says
// why syncing is off.
//
// Files: syncer.go the loop and the pass; networks.go what a pass does
// with one cluster network (keep, bring, create, who uses it); records.go
// the checks a record passes, the options it may carry, the backoff of
// refused creates; names.go the names of this host's containers told to
// the driver; engine.go the Engine interface and its implementation on
// Docker's client.
package dockersync
