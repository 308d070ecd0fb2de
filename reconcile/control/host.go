package control

import (
	"net/http"

	"github.com/gitgw/gitgw/internal/hostguard"
)

// hostGuard serves h only to requests whose Host header names this
// listener (hostguard: no DNS rebinding of the status and the metrics).
func hostGuard(listen string, h http.Handler) http.Handler {
	return hostguard.Guard(listen, "this agent answers only to localhost, 127.0.0.1, [::1] and its listen address", h)
}

// allowedHost is hostguard.Allowed (the page's tests name it so).
var allowedHost = hostguard.Allowed
