package gateway

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	long := strings.Repeat("x", 10000)
	for _, tc := range []struct {
		name, raw   string
		status      int
		body, ctype string
		retryAfter  string
		keep        bool
		err         string
	}{
		{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
			status: 200, body: "{}", ctype: "application/json", keep: true},
		{name: "header case and spaces", raw: "HTTP/1.1 429 Too Many\r\ncontent-LENGTH:  4 \r\nRETRY-after: 1\r\nX-Other: a:b\r\n\r\nbusy",
			status: 429, body: "busy", retryAfter: "1", keep: true},
		{name: "chunked with trailer", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
			status: 200, body: "abcde", keep: true},
		{name: "connection close", raw: "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 4\r\n\r\nboom",
			status: 500, body: "boom"},
		{name: "http/1.0 until eof", raw: "HTTP/1.0 200 OK\r\n\r\nall of it", status: 200, body: "all of it"},
		{name: "http/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nk", status: 200, body: "k", keep: true},
		{name: "interim 100 skipped", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", status: 204, keep: true},
		{name: "LF only", raw: "HTTP/1.1 200 OK\nContent-Length: 1\n\nz", status: 200, body: "z", keep: true},
		{name: "long header line", raw: "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nContent-Length: 1\r\n\r\nz", status: 200, body: "z", keep: true},
		{name: "short body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", err: "unexpected EOF"},
		{name: "nothing at all", raw: "", err: errStaleConn.Error()},
		{name: "garbage", raw: "SSH-2.0-OpenSSH\r\n\r\n", err: "malformed HTTP response"},
		{name: "bad length", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "bad Content-Length"},
		{name: "conflicting lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", err: "bad Content-Length"},
		{name: "eof in headers", raw: "HTTP/1.1 200 OK\r\nContent-Le", err: "unexpected EOF"},
		{name: "unknown transfer encoding", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", err: "unsupported Transfer-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res tryResult
			keep, err := readResponse(bufio.NewReaderSize(strings.NewReader(tc.raw), 4096), "POST", &res)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.status != tc.status || string(res.body) != tc.body || res.contentType != tc.ctype ||
				res.retryAfter != tc.retryAfter || keep != tc.keep {
				t.Errorf("got %d %q ct %q ra %q keep %v", res.status, res.body, res.contentType, res.retryAfter, keep)
			}
		})
	}
}

func TestWriteRequest(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	p := newConnPool("http://127.0.0.1:9/base")
	err := writeRequest(bw, p, &request{method: "POST", path: "/v2/models/iris/infer", query: "a=1", contentType: "application/json", body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	want := "POST /base/v2/models/iris/infer?a=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUser-Agent: bulwark-gateway\r\nAccept: application/json\r\n" +
		"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	if buf.String() != want {
		t.Errorf("got %q\nwant %q", buf.String(), want)
	}
}

// FuzzReadResponse feeds replicas' answers (bytes from outside) to the
// parser: it must return an answer or an error, never panic, and never
// keep a connection whose answer it could not delimit.
func FuzzReadResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nbody",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var res tryResult
		keep, err := readResponse(bufio.NewReaderSize(bytes.NewReader(raw), 4096), "POST", &res)
		if err != nil && keep {
			t.Fatalf("keep after error %v", err)
		}
		if err == nil && (res.status < 100 || res.status > 999) {
			t.Fatalf("status %d accepted", res.status)
		}
	})
}
