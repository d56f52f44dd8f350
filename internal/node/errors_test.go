package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
)

func TestInferErrors(t *testing.T) {
	n := newTestNode(t, Config{MaxBodyBytes: 1024}, func(st *modelstore.Store) {
		push(t, st, "m", "1", "scale=1")
		push(t, st, "failing", "1", "fail")
		push(t, st, "broken", "1", "not a model")
	})
	in := func(name, datatype, shape, data string) string {
		return `{"inputs":[{"name":"` + name + `","datatype":"` + datatype + `","shape":` + shape + `,"data":` + data + `}]}`
	}
	cases := []struct {
		name, path, body string
		code             int
		msg              []string
	}{
		{"malformed JSON", "/v2/models/m/infer", `{"inputs": [`, 400, []string{"malformed request body"}},
		{"not JSON", "/v2/models/m/infer", `hello`, 400, []string{"malformed request body"}},
		{"unknown model", "/v2/models/nope/infer", in("x", "FP32", "[1,4]", "[1,2,3,4]"), 404, []string{`model "nope" not found`}},
		{"unknown version", "/v2/models/m/versions/7/infer", in("x", "FP32", "[1,4]", "[1,2,3,4]"), 404, []string{`no version "7"`}},
		{"wrong input name", "/v2/models/m/infer", in("q", "FP32", "[1,4]", "[1,2,3,4]"), 400, []string{`missing input "x"`, "FP32", "[-1,4]"}},
		{"extra input", "/v2/models/m/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]},{"name":"w","datatype":"FP32","shape":[1],"data":[1]}]}`, 400, []string{`unknown input "w"`, "model inputs: x"}},
		{"wrong datatype", "/v2/models/m/infer", in("x", "INT32", "[1,4]", "[1,2,3,4]"), 400, []string{`input "x" has datatype INT32, expected FP32`}},
		{"wrong shape", "/v2/models/m/infer", in("x", "FP32", "[2,2]", "[1,2,3,4]"), 400, []string{`input "x" has shape [2,2], expected shape [-1,4]`}},
		{"wrong rank", "/v2/models/m/infer", in("x", "FP32", "[4]", "[1,2,3,4]"), 400, []string{`input "x" has shape [4]`}},
		{"too few values", "/v2/models/m/infer", in("x", "FP32", "[2,4]", "[1,2,3,4,5,6,7]"), 400, []string{`input "x": shape [2,4] needs 8 values, data has 7`}},
		{"nested mismatch", "/v2/models/m/infer", in("x", "FP32", "[2,4]", "[[1,2,3,4],[5,6,7]]"), 400, []string{`input "x"`, "expected 4"}},
		{"unsupported datatype", "/v2/models/m/infer", in("x", "BYTES", "[1]", `["abc"]`), 400, []string{`input "x": datatype BYTES is not supported (supported: FP32, FP64, INT32, INT64, BOOL)`}},
		{"string in FP32", "/v2/models/m/infer", in("x", "FP32", "[1,4]", `[1,2,"3",4]`), 400, []string{`input "x"`, "value 2 is a string"}},
		{"negative dim", "/v2/models/m/infer", in("x", "FP32", "[-1,4]", "[1,2,3,4]"), 400, []string{`input "x"`, "invalid dimension -1"}},
		{"unknown output", "/v2/models/m/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}],"outputs":[{"name":"nope"}]}`, 400, []string{`unknown output "nope"`, "model outputs: y, sum"}},
		{"too large", "/v2/models/m/infer", in("x", "FP32", "[1,4]", "["+strings.Repeat("1,", 600)+"1]"), 413, []string{"larger than the limit of 1024 bytes"}},
		{"not ready", "/v2/models/broken/infer", in("x", "FP32", "[1,4]", "[1,2,3,4]"), 503, []string{"broken:1 is not ready", "parse model"}},
		{"runtime error", "/v2/models/failing/infer", in("x", "FP32", "[1,4]", "[1,2,3,4]"), 500, []string{"inference failed: kernel exploded"}},
		{"GET on infer", "/v2/models/m/infer", "", 405, []string{"use POST"}},
		{"unknown path", "/v1/models/m", "", 404, []string{"no such endpoint"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := "POST"
			if c.body == "" {
				method = "GET"
			}
			code, msg := n.do(t, method, c.path, c.body)
			if code != c.code {
				t.Errorf("status %d, want %d (%s)", code, c.code, msg)
			}
			for _, m := range c.msg {
				if !strings.Contains(msg, m) {
					t.Errorf("message %q does not contain %q", msg, m)
				}
			}
		})
	}
}

// chunked hides its length, so the limit must be enforced while reading.
type chunked struct{ io.Reader }

func TestBodyLimitWithoutContentLength(t *testing.T) {
	n := newTestNode(t, Config{MaxBodyBytes: 1024}, func(st *modelstore.Store) { push(t, st, "m", "1", "scale=1") })
	body := `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[` + strings.Repeat(" ", 2000) + `1,2,3,4]}]}`
	req, _ := http.NewRequestWithContext(context.Background(), "POST", n.http.URL+"/v2/models/m/infer", chunked{strings.NewReader(body)})
	resp, err := n.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || req.ContentLength != 0 {
		t.Fatalf("status %d (content length %d)", resp.StatusCode, req.ContentLength)
	}
	// Just under the limit is fine.
	if code, msg := n.do(t, "POST", "/v2/models/m/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[`+strings.Repeat(" ", 900)+`1,2,3,4]}]}`); code != 200 {
		t.Fatalf("status %d: %s", code, msg)
	}
}
