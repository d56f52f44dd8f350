//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package gateway

import "net"

// connOpen cannot check without blocking here: trust the connection, and
// let a failed try be retried by the gateway.
func connOpen(net.Conn) bool { return true }
