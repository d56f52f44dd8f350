package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// connPool sends tries to one plain-HTTP replica over pooled HTTP/1.1
// connections, synchronously in the try's goroutine. net/http's Transport
// hands every request to two goroutines per connection (a writer and a
// reader) and back; for the gateway, whose whole job is forwarding small
// requests, that hand-off cost more CPU than the forwarding. Here a try
// takes an idle connection (or dials one), writes the request, reads the
// answer and puts the connection back: no goroutine, no per-request
// context or timer (the deadline is the connection's), and only the
// response headers the gateway uses are kept.
//
// https replicas go through net/http (Gateway.client) instead.
type connPool struct {
	hostport string // to dial
	host     string // Host header
	prefix   string // the replica address's path, prepended to every request path

	mu   sync.Mutex
	idle []*pconn // most recently used last
}

const (
	maxIdlePerReplica = 256
	idleConnTimeout   = 90 * time.Second
	dialTimeout       = time.Second
	maxHeaderBytes    = 1 << 20
)

var dialer = &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}

// newConnPool returns a pool for a plain-http replica address, nil for any
// other (https goes through net/http).
func newConnPool(addr string) *connPool {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil {
		return nil
	}
	hp := u.Host
	if u.Port() == "" {
		hp = net.JoinHostPort(u.Hostname(), "80")
	}
	return &connPool{hostport: hp, host: u.Host, prefix: u.EscapedPath()}
}

type pconn struct {
	nc            net.Conn
	br            *bufio.Reader
	bw            *bufio.Writer
	idleAt        time.Time
	writeDeadline bool // one is set
}

// checkIdleAfter is how long a connection may sit idle before it is
// checked for a close by the replica before reuse. Under load connections
// are reused within milliseconds and never checked.
const checkIdleAfter = time.Second

// idleConn returns an idle connection that can be reused, or nil.
func (p *connPool) idleConn(now time.Time) *pconn {
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		idle := now.Sub(pc.idleAt)
		if idle < checkIdleAfter || (idle < idleConnTimeout && pc.br.Buffered() == 0 &&
			pc.nc.SetReadDeadline(time.Time{}) == nil && connOpen(pc.nc)) {
			p.mu.Unlock()
			return pc
		}
		pc.nc.Close()
	}
	p.mu.Unlock()
	return nil
}

// get returns an idle connection or dials a new one.
func (p *connPool) get(now, deadline time.Time) (*pconn, error) {
	if pc := p.idleConn(now); pc != nil {
		return pc, nil
	}
	d := *dialer
	if dl := now.Add(dialTimeout); deadline.IsZero() || dl.Before(deadline) {
		d.Deadline = dl
	} else {
		d.Deadline = deadline
	}
	nc, err := d.Dial("tcp", p.hostport)
	if err != nil {
		return nil, err
	}
	return &pconn{nc: nc, br: bufio.NewReaderSize(nc, 4096), bw: bufio.NewWriterSize(nc, 4096)}, nil
}

// put returns a healthy connection to the pool, dropping the oldest idle
// one when it has expired or the pool is full.
func (p *connPool) put(pc *pconn, now time.Time) {
	pc.idleAt = now
	p.mu.Lock()
	var drop *pconn
	if len(p.idle) > 0 && (len(p.idle) >= maxIdlePerReplica || now.Sub(p.idle[0].idleAt) >= idleConnTimeout) {
		drop = p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
	}
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
	if drop != nil {
		drop.nc.Close()
	}
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		pc.nc.Close()
	}
}

// tryCtl lets a request abort one of its tries in flight: a hedge won, or
// the request is over. Aborting sets the connection's deadline in the
// past, so a blocked read or write returns at once, and the connection is
// then closed rather than reused.
type tryCtl struct {
	mu      sync.Mutex
	aborted bool
	outrun  bool     // aborted because a later try of the same request answered first
	conn    net.Conn // in use by the try
	cancel  func()   // for tries through net/http
}

var longAgo = time.Unix(1, 0)

func (t *tryCtl) abort(outrun bool) {
	t.mu.Lock()
	if !t.aborted {
		t.aborted, t.outrun = true, outrun
		if t.conn != nil {
			t.conn.SetDeadline(longAgo)
		}
		if t.cancel != nil {
			t.cancel()
		}
	}
	t.mu.Unlock()
}

// attach makes nc the try's connection, reading until readBy and writing
// a body of n bytes until deadline; false if the try was aborted already.
// A body that fits in the socket buffers never blocks its write, so only
// a large one gets a write deadline: every deadline set is a timer moved.
func (t *tryCtl) attach(pc *pconn, n int, readBy, deadline time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.aborted {
		return false
	}
	if n > smallBody {
		pc.nc.SetWriteDeadline(deadline)
		pc.writeDeadline = true
	} else if pc.writeDeadline {
		pc.nc.SetWriteDeadline(time.Time{})
		pc.writeDeadline = false
	}
	pc.nc.SetReadDeadline(readBy)
	t.conn = pc.nc
	return true
}

// smallBody is the largest request body whose write is assumed not to
// block (loopback and LAN sockets buffer far more).
const smallBody = 16 << 10

// detach ends the try's use of its connection. aborted reports whether
// the try was aborted meanwhile: then the connection's deadlines were
// moved to the past, and it must not be reused.
func (t *tryCtl) detach() (aborted bool) {
	t.mu.Lock()
	t.conn = nil
	aborted = t.aborted
	t.mu.Unlock()
	return aborted
}

func (t *tryCtl) state() (aborted, outrun bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.aborted, t.outrun
}

var errAborted = errors.New("try cancelled")

// roundTrip sends req and reads the answer into res (status, contentType,
// retryAfter, body). As with net/http and a POST, a request is not resent
// on another connection once written: a failure is the try's, and the
// gateway's retry (on another replica, within the budget) takes over. A
// connection idle for a while is checked before reuse, since the replica
// may have closed it (idle timeout) without the gateway reading it yet.
func (p *connPool) roundTrip(ctl *tryCtl, deadline time.Time, req *request, res *tryResult) error {
	pc, err := p.get(time.Now(), deadline)
	if err != nil {
		return err
	}
	if !ctl.attach(pc, len(req.body), deadline, deadline) {
		pc.nc.Close()
		return errAborted
	}
	if err := p.write(pc, req); err != nil {
		ctl.detach()
		pc.nc.Close()
		return err
	}
	return p.receive(pc, ctl, req, res)
}

// receive reads the answer to a request written on pc, then puts pc back
// in the pool, or closes it if it cannot carry another request.
func (p *connPool) receive(pc *pconn, ctl *tryCtl, req *request, res *tryResult) error {
	keep, err := readResponse(pc.br, req.method, res)
	aborted := ctl.detach()
	if err != nil {
		pc.nc.Close()
		if aborted {
			return errAborted
		}
		return err
	}
	if !keep || aborted {
		pc.nc.Close()
		return nil
	}
	// The deadline stays: the next try sets its own before using the
	// connection, and idleConn clears it before checking an idle one.
	p.put(pc, time.Now())
	return nil
}

// write sends the request line, headers and body.
func (p *connPool) write(pc *pconn, req *request) error {
	bw := pc.bw
	bw.WriteString(req.method)
	bw.WriteByte(' ')
	bw.WriteString(p.prefix)
	bw.WriteString(req.path)
	if req.query != "" {
		bw.WriteByte('?')
		bw.WriteString(req.query)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(p.host)
	bw.WriteString("\r\nUser-Agent: bulwark-gateway\r\nAccept: application/json\r\n")
	if req.contentType != "" {
		bw.WriteString("Content-Type: ")
		bw.WriteString(req.contentType)
		bw.WriteString("\r\n")
	}
	if req.body != nil || req.method == "POST" || req.method == "PUT" {
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], int64(len(req.body)), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(req.body)
	return bw.Flush()
}

// readResponse parses one HTTP/1.x answer from br: status, the headers
// the gateway passes on, and the whole body (Content-Length, chunked, or
// up to EOF). Interim 1xx answers are skipped.
func readResponse(br *bufio.Reader, method string, res *tryResult) (keep bool, err error) {
	budget := maxHeaderBytes
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			return false, err
		}
		// HTTP/1.1 200 OK
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return false, fmt.Errorf("malformed HTTP response %q", truncate(line))
		}
		http10 := line[7] == '0'
		status, err := strconv.Atoi(string(line[9:12]))
		if err != nil || status < 100 || status > 999 || (len(line) > 12 && line[12] != ' ') {
			return false, fmt.Errorf("malformed HTTP status line %q", truncate(line))
		}
		contentLength := int64(-1)
		chunked, closeConn, keepAlive := false, false, false
		res.contentType, res.retryAfter = "", ""
		for {
			line, err := readLine(br, &budget)
			if err != nil {
				return false, err
			}
			if len(line) == 0 {
				break
			}
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return false, fmt.Errorf("malformed HTTP header %q", truncate(line))
			}
			name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
			switch {
			case asciiEqualFold(name, "content-length"):
				n, err := strconv.ParseInt(string(value), 10, 64)
				if err != nil || n < 0 || (contentLength >= 0 && n != contentLength) {
					return false, fmt.Errorf("bad Content-Length %q", truncate(value))
				}
				contentLength = n
			case asciiEqualFold(name, "transfer-encoding"):
				if asciiEqualFold(value, "chunked") {
					chunked = true
				} else if !asciiEqualFold(value, "identity") {
					return false, fmt.Errorf("unsupported Transfer-Encoding %q", truncate(value))
				}
			case asciiEqualFold(name, "connection"):
				for _, tok := range bytes.Split(value, []byte(",")) {
					tok = bytes.TrimSpace(tok)
					closeConn = closeConn || asciiEqualFold(tok, "close")
					keepAlive = keepAlive || asciiEqualFold(tok, "keep-alive")
				}
			case asciiEqualFold(name, "content-type"):
				if res.contentType == "" {
					res.contentType = string(value)
				}
			case asciiEqualFold(name, "retry-after"):
				if res.retryAfter == "" {
					res.retryAfter = string(value)
				}
			}
		}
		if status >= 100 && status < 200 && status != 101 {
			continue // interim answer: the real one follows
		}
		res.status = status
		keep = !closeConn && (!http10 || keepAlive)
		switch {
		case method == "HEAD" || status == 204 || status == 304 || status == 101:
			res.body = nil
			return keep && status != 101, nil
		case chunked:
			body, err := readAll(httputil.NewChunkedReader(br), -1)
			if err != nil {
				return false, err
			}
			res.body = body
			// Trailers, if any, end with an empty line.
			for {
				line, err := readLine(br, &budget)
				if err != nil {
					return false, err
				}
				if len(line) == 0 {
					break
				}
			}
			return keep && contentLength < 0, nil
		case contentLength >= 0:
			if contentLength > maxResponseBytes {
				return false, fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
			}
			body := make([]byte, contentLength)
			if _, err := io.ReadFull(br, body); err != nil {
				return false, fmt.Errorf("read answer: %w", err)
			}
			res.body = body
			return keep, nil
		default: // delimited by the end of the connection
			body, err := readAll(br, -1)
			if err != nil {
				return false, err
			}
			res.body = body
			return false, nil
		}
	}
}

// readAll reads r to its end, up to maxResponseBytes.
func readAll(r io.Reader, sizeHint int) ([]byte, error) {
	var buf bytes.Buffer
	if sizeHint > 0 {
		buf.Grow(sizeHint)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r, maxResponseBytes+1)); err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if buf.Len() > maxResponseBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
	}
	return buf.Bytes(), nil
}

// readLine returns the next CRLF- or LF-terminated line without its end,
// valid until the next read, charging its length to budget.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull && len(long) <= *budget {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	*budget -= len(line)
	if *budget < 0 {
		return nil, errors.New("HTTP response headers too large")
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// asciiEqualFold compares b with lower, which must be lower case ASCII.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
