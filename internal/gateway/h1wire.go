package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"strconv"
	"syscall"
)

// The HTTP/1.1 wire format of connPool: a request written in one buffer,
// an answer parsed down to what the gateway passes on.

// writeRequest sends the request line, headers and body.
func writeRequest(bw *bufio.Writer, p *connPool, req *request) error {
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
	if err := bw.Flush(); err != nil {
		return staleIfReset(err)
	}
	return nil
}

// errStaleConn marks a connection the replica had closed before the
// request reached it: nothing was answered, and a new connection may
// carry the request.
var errStaleConn = errors.New("connection closed by the replica before it answered")

// staleIfReset wraps err with errStaleConn when it says the replica had
// closed the connection (end of stream, reset, broken pipe).
func staleIfReset(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %w", errStaleConn, err)
	}
	return err
}

// readResponse parses one HTTP/1.x answer from br: status, the headers
// the gateway passes on, and the whole body (Content-Length, chunked, or
// up to EOF). Interim 1xx answers are skipped.
func readResponse(br *bufio.Reader, method string, res *tryResult) (keep bool, err error) {
	budget := maxHeaderBytes
	for first := true; ; first = false {
		line, err := readLine(br, &budget)
		if err != nil {
			if first && budget == maxHeaderBytes {
				return false, staleIfReset(err) // not a byte of an answer
			}
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
			body, err := readWhole(httputil.NewChunkedReader(br), -1)
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
			body, err := readWhole(br, -1)
			if err != nil {
				return false, err
			}
			res.body = body
			return false, nil
		}
	}
}

// readWhole reads r to its end, up to maxResponseBytes.
func readWhole(r io.Reader, sizeHint int) ([]byte, error) {
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
