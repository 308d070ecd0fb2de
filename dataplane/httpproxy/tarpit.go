package httpproxy

import (
	"io"
	"net/http"
	"time"
)

// tarpit is HAProxy's tarpit: the request is held for hold with nothing
// sent to any server, then answered 500 and the connection closed, so
// that a client probing for what it should not pays a connection and
// time for each try. The wait ends early when the client goes away (the
// request's context is cancelled when its connection closes, or when the
// frontend is shut down and its connections closed): nothing is left
// waiting once the client is gone, and the handler's goroutine is the
// only one involved.
func tarpit(w http.ResponseWriter, r *http.Request, hold time.Duration) {
	t := time.NewTimer(hold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, "<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n</body></html>\n")
}
