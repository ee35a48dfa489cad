package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// notBuilt is the body of every answer when the assets are missing.
const notBuilt = "the console's assets were not built into this broker: run make build\n"

// Response headers on everything the handler writes. The CSP allows only
// this origin's scripts, so an injected string cannot run; 'unsafe-inline'
// styles are needed by xterm.js, which sizes its rows with style attributes.
var headers = map[string]string{
	"Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; " +
		"style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-cache", // revalidate: the ETag makes that cheap
}

// asset is one file the handler serves.
type asset struct {
	name        string // in dist
	contentType string
	body        []byte
	etag        string
}

// routes maps request paths to the files in dist.
var routes = map[string]asset{
	"/":        {name: "index.html", contentType: "text/html; charset=utf-8"},
	"/app.js":  {name: "app.js", contentType: "text/javascript; charset=utf-8"},
	"/app.css": {name: "app.css", contentType: "text/css; charset=utf-8"},
}

// embedded is the assets of the binary's own dist, loaded once.
var embedded = sync.OnceValue(func() map[string]asset { return load(dist, "dist") })

// Built reports whether the console's assets were built into this binary
// (all of index.html, app.js and app.css). When it is false, Handler
// answers every request with 503.
func Built() bool {
	return embedded() != nil
}

// assetHandler returns the handler for the console's pages: "/" is the
// app's page, "/app.js" and "/app.css" its bundle; any other path is 404.
// Only GET and HEAD are allowed. It is mounted at "/" beside /api/.
func assetHandler() http.Handler {
	return newHandler(embedded())
}

// load reads the routed files from dir in fsys. It returns nil if any is
// missing, which is the state of a checkout where only dist/README.txt
// exists.
func load(fsys fs.FS, dir string) map[string]asset {
	out := make(map[string]asset, len(routes))
	for path, a := range routes {
		b, err := fs.ReadFile(fsys, dir+"/"+a.name)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(b)
		a.body = b
		a.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
		out[path] = a
	}
	return out
}

// newHandler serves assets, or the 503 page when assets is nil.
func newHandler(assets map[string]asset) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range headers {
			h.Set(k, v)
		}
		if assets == nil {
			h.Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(notBuilt))
			return
		}
		a, ok := assets[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		// The zero time leaves Last-Modified out; ServeContent answers
		// If-None-Match and HEAD.
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
	})
}
