// Package clusternet keeps this host's cluster networks: for each one, a
// Network object with its peers (the containers of other hosts on it), as
// their records in etcd say (internal/cluster), checked, programmed on the
// network's VXLAN device (internal/netutil) and saved in the store; the
// names its peers and this host's endpoints are answered by; the records
// held after etcd lost its data; and the list-and-watch loop that keeps
// them current. A Table holds the networks and what they share (the live
// hosts, the networks' Docker names, the counts of refused records).
//
// The word for a container of another host is peer throughout: a
// cluster.Peer is its record, a netutil.Peer the kernel's entries for it,
// a Peer what this host has of it.
//
// The driver (driver) owns the networks' bridges and this host's
// endpoints; it makes a Network when a cluster network is created or
// loaded, tells it of its local endpoints' names, and removes it with the
// network. A Network asks the driver about local endpoints through Locals,
// never holding its own lock while it does.
//
// Locking. A Network's prog is held from reading what its VXLAN device
// should have to recording it, so a reprogram never works from peers an
// update has not reached; its mu guards its peers and watch; its names and
// held records have locks of their own, held for map operations only. None
// of them is held while the Network calls the driver (Locals, which takes
// the driver's lock), and the Table's lock is never held while a
// Network's is taken; the driver may call a Network under its own lock
// (Add, Start, SetLocal), never waiting there on prog or on a watch
// (Table.Remove, which waits for the watch, is called outside it). The
// name forwarders' questions (Table.Resolve, Reverse) take only the
// table's and the names' read locks: they never wait on programming, on
// the store or on etcd.
//
// Files: table.go the Table and the interfaces of what it uses; network.go
// a Network, its watch and how a list and an event become peers; peer.go
// the Peer and DNS names; records.go the checks a record passes; program.go
// the VXLAN device's entries and the saved peers; held.go records held
// after a loss of etcd's data, or refused for a reason that can change;
// names.go the names answered.
package clusternet
