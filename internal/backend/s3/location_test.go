package s3

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	good := []struct {
		in    string
		want  Location
		canon string
	}{
		{"s3:http://127.0.0.1:9000/bucket", Location{false, "127.0.0.1:9000", "bucket", ""}, ""},
		{"s3:https://s3.example.com/my-bucket/site/a/", Location{true, "s3.example.com", "my-bucket", "site/a"}, "s3:https://s3.example.com/my-bucket/site/a"},
		{"s3:https://[::1]:9443/b.k-t/p", Location{true, "[::1]:9443", "b.k-t", "p"}, ""},
		{"s3:http://minio/bucket/", Location{false, "minio", "bucket", ""}, "s3:http://minio/bucket"},
	}
	for _, tc := range good {
		got, err := ParseLocation(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
		canon := tc.canon
		if canon == "" {
			canon = tc.in
		}
		if got.String() != canon {
			t.Errorf("%s: String() = %s, want %s", tc.in, got.String(), canon)
		}
	}
	bad := []struct{ in, why string }{
		{"http://host/bucket", "does not start"},
		{"s3:ftp://host/bucket", "scheme"},
		{"s3:host/bucket", "scheme"},
		{"s3:http:///bucket", "no host"},
		{"s3:http://host", "no bucket"},
		{"s3:http://host/", "no bucket"},
		{"s3:http://key:secret@host/bucket", "credentials do not belong"},
		{"s3:http://host/Bucket", "lowercase"},
		{"s3:http://host/ab", "3 to 63"},
		{"s3:http://host/-bucket", "lowercase"},
		{"s3:http://host/bu..cket", "consecutive dots"},
		{"s3:http://host/bucket/a//b", "empty segment"},
		{"s3:http://host/bucket/a/../b", "not allowed"},
		{"s3:http://host/bucket/%2e%2e", "escaped"},
		{"s3:http://host/bucket/a%20b", "escaped"}, // the default escaping leaves RawPath empty
		{"s3:http://host/bucket?x=1", "query"},
		{"s3:http://host:99999/bucket", "bad port"},
		{"s3:http://host:x/bucket", "invalid port"},
	}
	for _, tc := range bad {
		_, err := ParseLocation(tc.in)
		if !errors.Is(err, ErrBadLocation) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: err = %v, want ErrBadLocation mentioning %q", tc.in, err, tc.why)
		}
	}
}

// FuzzParseLocation: locations come from users; whatever parses must print
// back to a location that parses to the same thing, and never carry
// credentials.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"s3:http://127.0.0.1:9000/bucket",
		"s3:https://s3.example.com/my-bucket/site/a/",
		"s3:https://[::1]:9443/b.k-t/p",
		"s3:http://u:p@host/bucket",
		"s3:http://host/bucket/a/../b",
		"s3:http://host:0/bucket",
		"s3:http://0/000/%20",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s)
		if err != nil {
			return
		}
		again, err := ParseLocation(loc.String())
		if err != nil {
			t.Fatalf("%q parsed, but its canonical form %q does not: %v", s, loc.String(), err)
		}
		if again != loc {
			t.Fatalf("%q: round trip %+v != %+v", s, again, loc)
		}
		if strings.Contains(loc.Endpoint, "@") {
			t.Fatalf("%q: endpoint %q carries user info", s, loc.Endpoint)
		}
	})
}
