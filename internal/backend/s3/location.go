package s3

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Scheme starts every S3 repository location.
const Scheme = "s3:"

// ErrBadLocation: a location that is not s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX].
var ErrBadLocation = errors.New("bad s3 location")

// Location is a parsed repository location.
type Location struct {
	Secure   bool   // https
	Endpoint string // host[:port], as given
	Bucket   string
	Prefix   string // "" or slash-separated segments, no leading or trailing slash
}

// String is the canonical form, which ParseLocation reads back.
func (l Location) String() string {
	scheme := "http"
	if l.Secure {
		scheme = "https"
	}
	s := Scheme + scheme + "://" + l.Endpoint + "/" + l.Bucket
	if l.Prefix != "" {
		s += "/" + l.Prefix
	}
	return s
}

// ParseLocation reads s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]. The scheme
// is required so that plain HTTP is always a visible choice; a trailing
// slash is ignored. User info in the URL is refused: credentials never
// travel in a location, which is printed in logs and messages.
func ParseLocation(s string) (Location, error) {
	bad := func(format string, args ...any) (Location, error) {
		return Location{}, fmt.Errorf("%w %q: %s (want s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX])", ErrBadLocation, s, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return bad("does not start with %q", Scheme)
	}
	u, err := url.Parse(rest)
	if err != nil {
		return bad("%v", err)
	}
	var loc Location
	switch u.Scheme {
	case "https":
		loc.Secure = true
	case "http":
	default:
		return bad("scheme must be http or https")
	}
	if u.User != nil {
		return bad("credentials do not belong in the location; use the environment, flags or a credentials file")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return bad("no query, fragment or opaque part allowed")
	}
	if err := checkHost(u.Host); err != nil {
		return bad("%v", err)
	}
	loc.Endpoint = u.Host
	// RawPath is empty when the escaping is the default one ("%20" for a
	// space), so compare with the escaped form too: a path that needs any
	// escaping would not read back the same from its canonical form.
	if u.RawPath != "" || u.EscapedPath() != u.Path {
		return bad("escaped characters in the path are not allowed")
	}
	path := strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/")
	bucket, prefix, _ := strings.Cut(path, "/")
	if err := checkBucket(bucket); err != nil {
		return bad("%v", err)
	}
	loc.Bucket = bucket
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if err := checkSegment(seg); err != nil {
				return bad("prefix: %v", err)
			}
		}
	}
	loc.Prefix = prefix
	return loc, nil
}

func checkHost(hostport string) error {
	if hostport == "" {
		return errors.New("no host")
	}
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else if strings.Contains(hostport, ":") && !strings.HasPrefix(hostport, "[") {
		return fmt.Errorf("bad host:port %q", hostport)
	}
	if host == "" {
		return errors.New("no host")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q", port)
		}
	}
	return nil
}

// checkBucket applies S3's bucket naming rules (3-63 characters: lowercase
// letters, digits, '.', '-'; starting and ending with a letter or digit).
func checkBucket(b string) error {
	if b == "" {
		return errors.New("no bucket")
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket %q: must be 3 to 63 characters", b)
	}
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '.' || c == '-') && i > 0 && i < len(b)-1
		if !ok {
			return fmt.Errorf("bucket %q: only lowercase letters, digits, '.' and '-' (not at the ends)", b)
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("bucket %q: no consecutive dots", b)
	}
	return nil
}

// checkSegment refuses prefix segments that file-system-backed servers
// would resolve (".", "..") or that are empty ("a//b").
func checkSegment(seg string) error {
	switch seg {
	case "":
		return errors.New("empty segment")
	case ".", "..":
		return fmt.Errorf("segment %q not allowed", seg)
	}
	for _, c := range seg {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("segment %q has a control character or backslash", seg)
		}
	}
	return nil
}
