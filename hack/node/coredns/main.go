// A CoreDNS with only the plugins the node's Corefile uses (hack/node/up.sh, ConfigMap
// kube-system/coredns). The released binary links every plugin, and the cloud ones (route53,
// azure, clouddns, ...) pull in their SDKs: most of its cold build time. The plugin chain's
// order comes from CoreDNS's own directive list (core/dnsserver), not from these imports, so
// leaving plugins out changes nothing for the ones kept; a Corefile that names a plugin not
// linked here fails at start: "no action found for directive ... (missing a plugin?)".
//
// Add a plugin to the Corefile? Import it here too; build.sh's cache key hashes this file,
// go.mod and go.sum, so the next `hack/node/build.sh` builds the new binary.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
