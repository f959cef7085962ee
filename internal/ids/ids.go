// Package ids holds the one rule for shortening Docker's 64-hex object IDs,
// which bridge names, iptables tags, logs and `mynet status` all use: the
// first 12 characters, as the docker CLI shows them.
package ids

// ShortLen is how many characters of an ID Short keeps.
const ShortLen = 12

// Short returns the first ShortLen characters of id (all of a shorter id).
func Short(id string) string {
	if len(id) > ShortLen {
		return id[:ShortLen]
	}
	return id
}
