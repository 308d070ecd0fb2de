// Package test holds the project-wide checks (dependency rules) and, in its
// subdirectories, the end-to-end labs and their harnesses: network
// namespaces (lab), a real systemd (systemd), Git remotes (gitremote).
package test
