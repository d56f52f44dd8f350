package bearer

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequire(t *testing.T) {
	calls := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ })
	cases := []struct {
		token, header string
		want          int
		called        bool
	}{
		{"s3cret", "Bearer s3cret", 200, true},
		{"s3cret", "Bearer wrong", 401, false},
		{"s3cret", "", 401, false},
		{"s3cret", "s3cret", 401, false},
		{"", "Bearer ", 404, false},
	}
	for _, c := range cases {
		calls = 0
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/admin/x", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		Require(c.token, next).ServeHTTP(rec, req)
		if rec.Code != c.want || (calls == 1) != c.called {
			t.Errorf("token %q header %q: status %d called %v", c.token, c.header, rec.Code, calls == 1)
		}
	}
}
