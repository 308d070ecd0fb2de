package reconcile

import "github.com/gitgw/gitgw/dataplane/l4proxy"

// Pool exposes the proxy pool for the status page, metrics and `gitgw
// status` (Stats()).
func (d *ProxyDriver) Pool() *l4proxy.Pool { return d.pool }
