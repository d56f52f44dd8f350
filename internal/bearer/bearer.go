// Package bearer guards admin endpoints with a static bearer token. The node
// and the gateway share it so their admin APIs behave the same: no token
// configured means the endpoint is disabled (404, not open); a missing or
// wrong token is 401 with a JSON error and changes nothing.
package bearer

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Require wraps next so that it runs only for requests carrying
// "Authorization: Bearer <token>". An empty token disables next entirely.
func Require(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			writeError(w, http.StatusNotFound, "admin API disabled: start with an admin token to enable it")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(`{"error":"` + msg + `"}`))
}
