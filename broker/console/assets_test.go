package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// fakeDist is a built dist as the build program leaves it.
var fakeDist = fstest.MapFS{
	"dist/README.txt": {Data: []byte("built by make build")},
	"dist/index.html": {Data: []byte("<!doctype html><title>readymesh</title>")},
	"dist/app.js":     {Data: []byte("console.log(1)")},
	"dist/app.css":    {Data: []byte("body{margin:0}")},
}

// get requests path from h and returns the response and its body.
func get(t *testing.T, h http.Handler, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// checkHeaders fails unless res carries the security headers.
func checkHeaders(t *testing.T, path string, res *http.Response) {
	t.Helper()
	for k, v := range headers {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s: header %s = %q, want %q", path, k, got, v)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q does not forbid framing", csp)
	}
}

// testBuilt checks a handler over built assets.
func testBuilt(t *testing.T, h http.Handler) {
	for _, tc := range []struct {
		path, contentType string
	}{
		{"/", "text/html; charset=utf-8"},
		{"/app.js", "text/javascript; charset=utf-8"},
		{"/app.css", "text/css; charset=utf-8"},
	} {
		res, body := get(t, h, "GET", tc.path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tc.path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		if body == "" {
			t.Errorf("GET %s: empty body", tc.path)
		}
		checkHeaders(t, tc.path, res)

		// The ETag lets a browser revalidate under no-cache.
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.path)
			continue
		}
		if res, _ := get(t, h, "GET", tc.path, "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: status %d, want 304", tc.path, res.StatusCode)
		}
	}
	for _, path := range []string{"/assets/app.js", "/static/x.css", "/README.txt", "/index.html", "/dist/app.js", "/app.js/"} {
		res, _ := get(t, h, "GET", path)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, res.StatusCode)
		}
		checkHeaders(t, path, res)
	}
	if res, _ := get(t, h, "POST", "/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}
	if res, body := get(t, h, "HEAD", "/app.js"); res.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD /app.js: status %d, %d-byte body; want 200 and none", res.StatusCode, len(body))
	}
}

// testNotBuilt checks a handler over a dist without the app.
func testNotBuilt(t *testing.T, h http.Handler) {
	for _, path := range []string{"/", "/app.js", "/app.css", "/anything"} {
		res, body := get(t, h, "GET", path)
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET %s: status %d, want 503", path, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q, want text/plain", path, got)
		}
		if !strings.Contains(body, "run make build") {
			t.Errorf("GET %s: body %q does not say to run make build", path, body)
		}
		checkHeaders(t, path, res)
	}
}

// TestHandler tests the binary's own embedded assets, which are there or
// not depending on whether the build program ran before `go test`.
func TestHandler(t *testing.T) {
	if Built() {
		t.Log("dist is built: testing the embedded app")
		testBuilt(t, assetHandler())
		return
	}
	t.Log("dist is not built: testing the 503 page (run go run ./broker/console/build to test the app)")
	testNotBuilt(t, assetHandler())
}

// TestHandlerStates tests both states on fixed file systems, whatever the
// state of dist.
func TestHandlerStates(t *testing.T) {
	t.Run("built", func(t *testing.T) {
		assets := load(fakeDist, "dist")
		if assets == nil {
			t.Fatal("load found no assets in a complete dist")
		}
		testBuilt(t, newHandler(assets))
	})
	t.Run("readme only", func(t *testing.T) {
		fsys := fstest.MapFS{"dist/README.txt": fakeDist["dist/README.txt"]}
		if assets := load(fsys, "dist"); assets != nil {
			t.Fatal("load found assets in a dist with only README.txt")
		}
		testNotBuilt(t, newHandler(nil))
	})
	t.Run("partial", func(t *testing.T) {
		fsys := fstest.MapFS{}
		for k, v := range fakeDist {
			if k != "dist/app.css" {
				fsys[k] = v
			}
		}
		if assets := load(fsys, "dist"); assets != nil {
			t.Fatal("load accepted a dist without app.css")
		}
	})
}
