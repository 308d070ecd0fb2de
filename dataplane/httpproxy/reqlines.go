package httpproxy

import "net/http"

// HAProxy 1.x's request filters (reqdeny, reqtarpit, reqsetbe, … and
// their -i forms) match a regex against the request a line at a time: the
// request line, then each header line, and act when any line matches.
// gitgw keeps that as the condition subject "line"; a filter becomes a
// rule with one such condition, in HAProxy's order (the importer orders
// them, hapreqfilter.go).
//
// The lines are rebuilt from what net/http parsed, as close to what the
// client sent as it keeps: the request line with the method, the target
// and the protocol as sent; each header line as "Name: value", one per
// value, with the name in its canonical form (net/http spells
// "x-forwarded-for" X-Forwarded-For: a case-sensitive regex on a header
// name sees that spelling) and the value without the spaces around it;
// Host and Transfer-Encoding, which net/http takes out of the header
// map, are lines too. The order of the header lines is not kept: a
// filter acts when any line matches, whatever its place.

// anyRequestLine reports whether match holds for one of r's lines; it
// stops at the first that does, without building the others.
func anyRequestLine(r *http.Request, match func(string) bool) bool {
	if match(r.Method + " " + r.RequestURI + " " + r.Proto) {
		return true
	}
	if r.Host != "" && match("Host: "+r.Host) {
		return true
	}
	for _, te := range r.TransferEncoding {
		if match("Transfer-Encoding: " + te) {
			return true
		}
	}
	for name, vs := range r.Header {
		for _, v := range vs {
			if match(name + ": " + v) {
				return true
			}
		}
	}
	return false
}
